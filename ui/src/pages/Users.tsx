// Users: per end user, usage, cost, errors and when they were last seen.
import { ErrorBox, Loading, RangePicker, SendDataHelp, VirtualList } from "../components/common";
import type { UserRow } from "../api/generated/UserRow";
import { Route } from "../router";
import { FilterBar, listParams, usePaged } from "./Traces";
import { fmtAgo, fmtCompact, fmtInt, fmtUsd } from "../format";

export function Users({ route }: { route: Route }) {
  const p = route.params;
  const range = p.get("range") ?? "30d";
  const params = listParams(p, "30d");
  const key = JSON.stringify({ ...params, from: p.get("from"), to: p.get("to"), range });
  const list = usePaged<UserRow>("/users", "users", params, key);
  const filtered = [...p.keys()].some((k) => k !== "range");
  return (
    <div class="page" data-testid="page-users">
      <div class="toolbar">
        <h1>Users</h1>
        <RangePicker value={range} />
        <span class="muted">
          {list.items.length}
          {list.done ? "" : "+"} users
        </span>
      </div>
      <FilterBar p={p} fields={["user_id", "service", "model"]} />
      {list.error ? <ErrorBox error={list.error} what="users" /> : null}
      {list.items.length ? (
        <div class="listbox">
          <div class="urow thead">
            <span class="c-name">user</span>
            <span class="c-num">calls</span>
            <span class="c-num">traces</span>
            <span class="c-num">sessions</span>
            <span class="c-num">errors</span>
            <span class="c-num">tokens in/out</span>
            <span class="c-num">cost</span>
            <span class="c-time">last seen</span>
          </div>
          <VirtualList
            items={list.items}
            rowHeight={34}
            height={Math.max(300, window.innerHeight - 260)}
            onEnd={list.more}
            testid="user-list"
            render={(u) => (
              <div class="urow" data-testid="user-row">
                <span class="c-name">
                  <a href={`/traces?user_id=${encodeURIComponent(u.user_id)}`}>{u.user_id}</a>
                </span>
                <span class="c-num">{fmtInt(u.calls)}</span>
                <span class="c-num">{fmtInt(u.traces)}</span>
                <span class="c-num">
                  <a href={`/sessions?user_id=${encodeURIComponent(u.user_id)}`}>{fmtInt(u.sessions)}</a>
                </span>
                <span class={`c-num ${u.errors ? "err-text" : ""}`}>{fmtInt(u.errors)}</span>
                <span class="c-num">
                  {fmtCompact(u.input_tokens)}/{fmtCompact(u.output_tokens)}
                </span>
                <span class="c-num">{fmtUsd(u.cost_usd)}</span>
                <span class="c-time" title={u.last_seen}>
                  {fmtAgo(u.last_seen)}
                </span>
              </div>
            )}
          />
        </div>
      ) : null}
      {list.loading ? <Loading /> : null}
      {!list.loading && !list.error && list.items.length === 0 ? (
        filtered ? <div class="empty" data-testid="no-match">No user matches these filters.</div> : <SendDataHelp title="No users yet: set user.id (or enduser.id) on your spans" />
      ) : null}
    </div>
  );
}
