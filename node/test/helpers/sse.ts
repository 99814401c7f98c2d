// A raw Server-Sent Events reader over fetch: events (id, event, data) and comments, as a browser's
// EventSource would parse them, with waits on what arrives.
import { waitFor } from './ports.js';

export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
}

export interface SseStream {
  status: number;
  contentType: string;
  events: SseEvent[];
  comments: string[];
  /** The last `id:` seen, as EventSource keeps it. */
  lastEventId: string | undefined;
  waitEvents(n: number, what?: string): Promise<SseEvent[]>;
  waitComment(pred: (c: string) => boolean, what?: string): Promise<string>;
  close(): void;
}

export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const ctl = new AbortController();
  const res = await fetch(url, { headers, signal: ctl.signal });
  const s: SseStream = {
    status: res.status,
    contentType: res.headers.get('content-type') ?? '',
    events: [],
    comments: [],
    lastEventId: undefined,
    waitEvents: async (n, what = `${n} SSE events`) => (await waitFor(() => s.events.length >= n, { what }), s.events),
    waitComment: (pred, what = 'an SSE comment') => waitFor(() => s.comments.find(pred), { what }),
    close: () => ctl.abort(),
  };
  if (!res.body) return s;
  let buf = '';
  let cur: Partial<SseEvent> & { data?: string } = {};
  void (async () => {
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += Buffer.from(chunk).toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          if (line === '') {
            if (cur.data !== undefined) s.events.push({ id: s.lastEventId, event: cur.event ?? 'message', data: cur.data });
            cur = {};
          } else if (line.startsWith(':')) s.comments.push(line.slice(1).trim());
          else {
            const i = line.indexOf(':');
            const field = i < 0 ? line : line.slice(0, i);
            const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
            if (field === 'id') s.lastEventId = value;
            else if (field === 'event') cur.event = value;
            else if (field === 'data') cur.data = cur.data === undefined ? value : `${cur.data}\n${value}`;
          }
        }
      }
    } catch {
      /* aborted */
    }
  })();
  return s;
}
