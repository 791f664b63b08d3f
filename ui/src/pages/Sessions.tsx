// Sessions: conversations across traces, and one session replayed turn by turn.
import { ErrorBox, Loading, RangePicker, SendDataHelp, Stat, StatusBadge, VirtualList, useFetch } from "../components/common";
import { MessageView } from "../components/LlmPanel";
import { api } from "../api/client";
import type { SessionRow } from "../api/generated/SessionRow";
import type { SessionDetailResponse } from "../api/generated/SessionDetailResponse";
import type { CallListResponse } from "../api/generated/CallListResponse";
import type { LlmCall } from "../api/generated/LlmCall";
import type { Message } from "../api/generated/Message";
import { Route } from "../router";
import { FilterBar, listParams, usePaged } from "./Traces";
import { fmtAgo, fmtCompact, fmtInt, fmtMs, fmtTime, fmtUsd } from "../format";

export function Sessions({ route }: { route: Route }) {
  const p = route.params;
  const range = p.get("range") ?? "7d";
  const params = listParams(p, "7d");
  const key = JSON.stringify({ ...params, from: p.get("from"), to: p.get("to"), range });
  const list = usePaged<SessionRow>("/sessions", "sessions", params, key);
  const filtered = [...p.keys()].some((k) => k !== "range");
  return (
    <div class="page" data-testid="page-sessions">
      <div class="toolbar">
        <h1>Sessions</h1>
        <RangePicker value={range} />
        <span class="muted">
          {list.items.length}
          {list.done ? "" : "+"} sessions
        </span>
      </div>
      <FilterBar p={p} fields={["q", "user_id", "service", "model"]} />
      {list.error ? <ErrorBox error={list.error} what="sessions" /> : null}
      {list.items.length ? (
        <div class="listbox">
          <div class="srow thead">
            <span class="c-name">session</span>
            <span class="c-id">user</span>
            <span class="c-num">traces</span>
            <span class="c-num">calls</span>
            <span class="c-num">errors</span>
            <span class="c-num">tokens in/out</span>
            <span class="c-num">cost</span>
            <span class="c-time">last active</span>
          </div>
          <VirtualList
            items={list.items}
            rowHeight={34}
            height={Math.max(300, window.innerHeight - 260)}
            onEnd={list.more}
            testid="session-list"
            render={(s) => (
              <a class="srow" href={`/sessions/${encodeURIComponent(s.session_id)}`} data-testid="session-row">
                <span class="c-name">{s.session_id}</span>
                <span class="c-id">{s.user_id ?? ""}</span>
                <span class="c-num">{s.trace_count}</span>
                <span class="c-num">{s.call_count}</span>
                <span class={`c-num ${s.errors ? "err-text" : ""}`}>{s.errors}</span>
                <span class="c-num">
                  {fmtCompact(s.input_tokens)}/{fmtCompact(s.output_tokens)}
                </span>
                <span class="c-num">{fmtUsd(s.cost_usd)}</span>
                <span class="c-time">{fmtAgo(s.last_seen)}</span>
              </a>
            )}
          />
        </div>
      ) : null}
      {list.loading ? <Loading /> : null}
      {!list.loading && !list.error && list.items.length === 0 ? (
        filtered ? <div class="empty" data-testid="no-match">No session matches these filters.</div> : <SendDataHelp title="No sessions yet: set session.id (or gen_ai.conversation.id) on your spans" />
      ) : null}
    </div>
  );
}

/** The messages of a call that the conversation has not shown yet: agents resend the whole
 * history on every call, so only what follows the previous call's messages is new. */
export function newMessages(call: LlmCall, shown: Message[]): Message[] {
  const input = call.input_messages;
  const same = (a: Message, b: Message) => a.role === b.role && (a.content ?? "") === (b.content ?? "");
  let prefix = 0;
  while (prefix < input.length && prefix < shown.length && same(input[prefix], shown[prefix])) prefix++;
  if (prefix === 0 && shown.length > 0) {
    // A fresh context: show from the last user message on.
    const lastUser = input.map((m) => m.role).lastIndexOf("user");
    return input.slice(Math.max(0, lastUser));
  }
  return input.slice(prefix);
}

const WRAPPERS = ["invoke_agent", "create_agent", "execute_tool", "embeddings"];

export function SessionDetail({ id }: { id: string }) {
  const detail = useFetch((signal) => api<SessionDetailResponse>(`/sessions/${encodeURIComponent(id)}`, {}, signal), [id]);
  const calls = useFetch((signal) => api<CallListResponse>("/calls", { session_id: id, limit: 1000 }, signal), [id]);
  if (detail.error) return <ErrorBox error={detail.error} what={`session ${id}`} />;
  if (!detail.data) return <Loading />;
  const s = detail.data.session;
  const byTrace = new Map<string, LlmCall[]>();
  for (const c of [...(calls.data?.calls ?? [])].sort((a, b) => a.start_time_unix_nano - b.start_time_unix_nano)) {
    const list = byTrace.get(c.trace_id);
    if (list) list.push(c);
    else byTrace.set(c.trace_id, [c]);
  }
  let shown: Message[] = [];
  return (
    <div class="page" data-testid="page-session">
      <div class="toolbar">
        <h1>Session {id}</h1>
        {s.user_id ? (
          <a href={`/sessions?user_id=${encodeURIComponent(s.user_id)}`} class="muted">
            user {s.user_id}
          </a>
        ) : null}
      </div>
      <div class="stats">
        <Stat label="Turns (traces)" value={fmtInt(s.trace_count)} />
        <Stat label="LLM calls" value={fmtInt(s.call_count)} />
        <Stat label="Errors" value={fmtInt(s.errors)} />
        <Stat label="Tokens in / out" value={`${fmtCompact(s.input_tokens)} / ${fmtCompact(s.output_tokens)}`} />
        <Stat label="Cost" value={fmtUsd(s.cost_usd)} />
        <Stat label="Active" value={`${fmtTime(s.first_seen)} → ${fmtTime(s.last_seen)}`} />
      </div>
      {calls.error ? <ErrorBox error={calls.error} what="the session's calls" /> : null}
      <div class="turns">
        {detail.data.traces.map((t, i) => {
          const all = byTrace.get(t.trace_id) ?? [];
          // The model calls tell the conversation; agent and tool spans repeat or wrap them.
          const model = all.filter((c) => !WRAPPERS.includes(c.operation));
          const turnCalls = model.length ? model : all;
          return (
            <div class="turn card" data-testid="turn">
              <div class="turn-head">
                <b>Turn {i + 1}</b> <a href={`/traces/${t.trace_id}`}>{t.name}</a> <span class="muted">{fmtTime(t.start_time)}</span> <span class="muted">{fmtMs(t.duration_ms)}</span>{" "}
                <span class="muted">{fmtUsd(t.cost_usd)}</span> <StatusBadge status={t.status} />
              </div>
              {turnCalls.map((c) => {
                const fresh = newMessages(c, shown);
                shown = [...c.input_messages, ...c.output_messages];
                return (
                  <div class="turn-call">
                    {fresh.map((m) => (
                      <MessageView m={m} />
                    ))}
                    {c.output_messages.map((m) => (
                      <MessageView m={m} testid="output-message" />
                    ))}
                    <div class="muted small">
                      {c.response_model ?? c.request_model} · {fmtMs(c.duration_ms)} · {fmtInt(c.usage.input_tokens)}→{fmtInt(c.usage.output_tokens)} tokens{" "}
                      {c.error_message ? <span class="err-text">· {c.error_message}</span> : null}
                    </div>
                  </div>
                );
              })}
              {!turnCalls.length && calls.data ? <div class="muted">No LLM calls recorded in this turn.</div> : null}
            </div>
          );
        })}
      </div>
    </div>
  );
}
