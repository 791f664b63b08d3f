// The LLM call of a span: chat messages (system prompt, roles, tool calls and results), output,
// parameters, tokens, cost, TTFT, and token logprobs as per-token confidence.
import type { LlmCall } from "../api/generated/LlmCall";
import type { Message } from "../api/generated/Message";
import { fmtInt, fmtMs, fmtUsd } from "../format";
import { StatusBadge } from "./common";

export function MessageView({ m, testid = "message" }: { m: Message; testid?: string }) {
  const calls = m.tool_calls ?? [];
  return (
    <div class={`msg msg-${m.role}`} data-testid={testid} data-role={m.role}>
      <div class="msg-role">
        {m.role}
        {m.name ? <span class="muted"> · {m.name}</span> : null}
        {m.tool_call_id ? <span class="muted"> · result of {m.tool_call_id}</span> : null}
        {m.finish_reason ? <span class="muted"> · {m.finish_reason}</span> : null}
      </div>
      {m.content ? <div class="msg-content">{m.content}</div> : null}
      {calls.map((c) => (
        <div class="tool-call" data-testid="tool-call">
          <span class="tool-name">⚙ {c.name}</span>
          {c.id ? <span class="muted"> {c.id}</span> : null}
          {c.arguments ? <pre>{pretty(c.arguments)}</pre> : null}
        </div>
      ))}
    </div>
  );
}

function pretty(s: string): string {
  try {
    return JSON.stringify(JSON.parse(s), null, 2);
  } catch {
    return s;
  }
}

interface TokenProb {
  token: string;
  logprob: number;
  top?: { token: string; logprob: number }[];
}

/** Token logprobs in the shapes clients record: OpenAI's `{content:[{token,logprob,top_logprobs}]}`,
 * a bare list of those, or parallel `tokens`/`token_logprobs` lists. */
export function tokenProbs(v: unknown): TokenProb[] {
  const asItem = (x: unknown): TokenProb | null => {
    if (!x || typeof x !== "object") return null;
    const o = x as Record<string, unknown>;
    if (typeof o.token !== "string" || typeof o.logprob !== "number") return null;
    const top = Array.isArray(o.top_logprobs) ? (o.top_logprobs.map(asItem).filter(Boolean) as TokenProb[]) : undefined;
    return { token: o.token, logprob: o.logprob, top };
  };
  if (Array.isArray(v)) return v.map(asItem).filter((x): x is TokenProb => x !== null);
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (Array.isArray(o.content)) return tokenProbs(o.content);
    if (Array.isArray(o.tokens) && Array.isArray(o.token_logprobs)) {
      return o.tokens.map((t, i) => ({ token: String(t), logprob: Number(o.token_logprobs && (o.token_logprobs as unknown[])[i]) }));
    }
  }
  return [];
}

function Logprobs({ value }: { value: unknown }) {
  const tokens = tokenProbs(value);
  if (!tokens.length) return null;
  return (
    <section>
      <h3>Token confidence</h3>
      <div class="logprobs" data-testid="logprobs">
        {tokens.map((t) => {
          const p = Math.exp(t.logprob);
          const hue = Math.round(p * 120);
          const alts = (t.top ?? []).map((a) => `${JSON.stringify(a.token)} ${(Math.exp(a.logprob) * 100).toFixed(1)}%`).join("\n");
          return (
            <span class="tok" style={{ background: `hsla(${hue}, 70%, 50%, 0.25)` }} title={`p=${(p * 100).toFixed(1)}%${alts ? `\n${alts}` : ""}`}>
              {t.token}
            </span>
          );
        })}
      </div>
    </section>
  );
}

export function LlmPanel({ call }: { call: LlmCall }) {
  const u = call.usage;
  const params = Object.entries(call.params ?? {}).filter(([, v]) => v !== null && v !== undefined && !(Array.isArray(v) && v.length === 0));
  return (
    <div class="llm" data-testid="llm-panel">
      <div class="kv">
        <span>model</span>
        <b data-testid="llm-model">
          {call.response_model ?? call.request_model ?? "?"}
          {call.request_model && call.response_model && call.request_model !== call.response_model ? <span class="muted"> (asked {call.request_model})</span> : null}
        </b>
        <span>provider</span>
        <b>{call.provider ?? "–"}</b>
        <span>operation</span>
        <b>{call.operation}</b>
        <span>status</span>
        <b>
          <StatusBadge status={call.status} />
          {call.error_type ? <span class="err-text"> {call.error_type}</span> : null}
        </b>
        <span>latency</span>
        <b>{fmtMs(call.duration_ms)}</b>
        <span>TTFT</span>
        <b data-testid="llm-ttft">{fmtMs(call.ttft_ms)}</b>
        <span>tokens/s</span>
        <b>{call.output_tokens_per_s ? call.output_tokens_per_s.toFixed(1) : "–"}</b>
        <span>tokens</span>
        <b data-testid="llm-tokens">
          {fmtInt(u.input_tokens)} in · {fmtInt(u.output_tokens)} out
          {u.cache_read_tokens ? ` · ${fmtInt(u.cache_read_tokens)} cached` : ""}
          {u.reasoning_tokens ? ` · ${fmtInt(u.reasoning_tokens)} reasoning` : ""}
        </b>
        <span>cost</span>
        <b data-testid="llm-cost" title={call.cost ? `${call.cost.price_id} (prices ${call.cost.price_table_version})` : "no price known for this model"}>
          {call.cost ? `${fmtUsd(call.cost.total_usd)} (in ${fmtUsd(call.cost.input_usd)}, out ${fmtUsd(call.cost.output_usd)})` : "unpriced"}
        </b>
        {call.user_id ? (
          <>
            <span>user</span>
            <b>
              <a href={`/traces?user_id=${encodeURIComponent(call.user_id)}`}>{call.user_id}</a>
            </b>
          </>
        ) : null}
        {call.prompt_name ? (
          <>
            <span>prompt</span>
            <b>
              {call.prompt_name}
              {call.prompt_version ? ` v${call.prompt_version}` : ""}
            </b>
          </>
        ) : null}
      </div>
      {params.length ? (
        <div class="params" data-testid="llm-params">
          {params.map(([k, v]) => (
            <span class="chip">
              {k}={Array.isArray(v) ? v.join(",") : String(v)}
            </span>
          ))}
        </div>
      ) : null}
      {call.error_message ? <div class="error-box">{call.error_message}</div> : null}
      {call.system_instructions ? (
        <section>
          <h3>System prompt</h3>
          <MessageView m={{ role: "system", content: call.system_instructions } as Message} />
        </section>
      ) : null}
      {call.input_messages.length ? (
        <section data-testid="input-messages">
          <h3>Input ({call.input_messages.length} messages)</h3>
          {call.input_messages.map((m) => (
            <MessageView m={m} />
          ))}
        </section>
      ) : null}
      {call.output_messages.length ? (
        <section data-testid="output-messages">
          <h3>Output</h3>
          {call.output_messages.map((m) => (
            <MessageView m={m} testid="output-message" />
          ))}
        </section>
      ) : null}
      <Logprobs value={call.logprobs} />
      {call.tool_definitions ? (
        <details class="raw">
          <summary>Tool definitions</summary>
          <pre>{JSON.stringify(call.tool_definitions, null, 2)}</pre>
        </details>
      ) : null}
    </div>
  );
}
