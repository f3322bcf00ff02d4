"""The HTTP door: parsers, serializers, push and operations views. It parses and
authorizes, then hands over to the stream core."""
