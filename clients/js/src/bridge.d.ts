// Types of bridge.js (SPEC.md §2-§11).

export type State = "disconnected" | "connecting" | "connected";

export interface MessageFrame {
  type: "message";
  id: string;
  seq: number | null;
  event: string;
  from: string | null;
  to: string | null;
  data: unknown;
  timestamp: string;
  mentions: string[];
  topic?: string;
  recalled?: true;
  stream_id?: string;
  incomplete?: true;
}

export interface StreamPartFrame {
  type: "stream";
  id: string;
  stream_id: string;
  from: string | null;
  to?: string;
  topic?: string;
  index: number;
  delta: string;
}

export interface AckFrame {
  type: "ack";
  ref: string | null;
  id: string;
  recipients: string[];
  topic?: string;
  seq?: number | null;
}

export interface ErrorFrame {
  type: "error";
  code: string;
  message: string;
  ref?: string;
  topic?: string;
  retry_after_ms?: number;
}

export interface ConnectedFrame {
  type: "connected";
  connection_id: string;
  user_id: string;
  server_time: string;
  heartbeat_interval: number;
  last_seq: number;
  read_seq: number;
  unread: number;
  expires_at?: string | null;
}

export interface Events {
  state: State;
  connected: ConnectedFrame;
  message: MessageFrame;
  stream: StreamPartFrame;
  signal: { type: "signal"; event: string; data: unknown; from: string; to?: string; topic?: string; timestamp: string };
  read: { type: "read"; seq: number; topic?: string };
  receipt: { type: "receipt"; user_id: string; seq: number; message_ids?: string[]; topic?: string };
  recall: { type: "recall"; id: string; topic?: string };
  subscribed: { type: "subscribed"; topic: string; seq: number | null; recovered: boolean; ref?: string; read_seq?: number; unread?: number };
  unsubscribed: { type: "unsubscribed"; topic: string; reason: "client" | "removed" | "reset"; ref?: string };
  join: { type: "join"; topic: string; user_id: string };
  leave: { type: "leave"; topic: string; user_id: string };
  history_truncated: { type: "history_truncated"; oldest_seq: number; topic?: string };
  error: ErrorFrame | { code: string; message: string };
  token_expiring: { type: "token_expiring"; expires_at: string };
  refreshed: { type: "refreshed"; expires_at: string };
  closed: { code: number };
  handler_error: { type: string; error: unknown };
}

export interface WebSocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number): void;
  onmessage: ((event: { data: string }) => void) | null;
  onclose: ((event: { code: number; reason?: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export interface ClientOptions {
  url: string;
  userId?: string;
  token?: string | (() => string | Promise<string>);
  WebSocket?: new (url: string) => WebSocketLike;
  storage?: Pick<Storage, "getItem" | "setItem"> | null;
  ackTimeoutMs?: number;
  stableAfterMs?: number;
  backoff?: { minMs?: number; maxMs?: number; random?: () => number };
}

export interface Target {
  to?: string;
  topic?: string;
}

export interface OutgoingStream {
  streamId: string;
  write(delta: string): boolean;
  end(delta?: string, data?: Record<string, unknown>): Promise<AckFrame>;
}

export declare const RETRY_CODES: Set<number>;
export declare const FATAL_CODES: Set<number>;

export declare class Backoff {
  constructor(options?: { minMs?: number; maxMs?: number; random?: () => number });
  attempt: number;
  next(): number;
  reset(): void;
}

export declare class Positions {
  constructor(saved?: Record<string, number>);
  admit(stream: string, seq: number | null | undefined): boolean;
  get(stream: string): number | undefined;
  toJSON(): Record<string, number>;
}

export declare class BridgeClient {
  constructor(options: ClientOptions);
  readonly state: State;
  readonly positions: Positions;
  on<K extends keyof Events>(type: K, handler: (payload: Events[K]) => void): () => void;
  connect(): void;
  disconnect(): void;
  sendMessage(text: string, options?: Target & { data?: Record<string, unknown> }): Promise<AckFrame>;
  signal(event: string, options?: Target & { data?: Record<string, unknown> }): boolean;
  read(seq: number, options?: { topic?: string }): boolean;
  stream(options: Target & { streamId?: string }): OutgoingStream;
  subscribe(topic: string, handler?: (message: MessageFrame) => void, options?: { since?: number }): void;
  unsubscribe(topic: string): void;
}
