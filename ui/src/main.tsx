import { render } from "preact";
import "./styles.css";
import { onLinkClick, useRoute } from "./router";
import { Overview } from "./pages/Overview";
import { Traces } from "./pages/Traces";
import { TraceDetail } from "./pages/TraceDetail";
import { Sessions, SessionDetail } from "./pages/Sessions";
import { Users } from "./pages/Users";
import { Models } from "./pages/Models";

const NAV = [
  ["/", "Overview"],
  ["/traces", "Traces"],
  ["/sessions", "Sessions"],
  ["/users", "Users"],
  ["/models", "Models"],
] as const;

function Page() {
  const route = useRoute();
  const parts = route.path.split("/").filter(Boolean).map(decodeURIComponent);
  const [section, id] = parts;
  if (!section) return <Overview route={route} />;
  if (section === "traces") return id ? <TraceDetail route={route} traceId={id} /> : <Traces route={route} />;
  if (section === "sessions") return id ? <SessionDetail id={id} /> : <Sessions route={route} />;
  if (section === "users") return <Users route={route} />;
  if (section === "models") return <Models route={route} />;
  return (
    <div class="page empty" data-testid="not-found">
      <h1>Page not found</h1>
      <p>
        Nothing at <code>{route.path}</code>. <a href="/">Go to the overview</a>.
      </p>
    </div>
  );
}

function App() {
  const route = useRoute();
  const section = "/" + (route.path.split("/")[1] ?? "");
  return (
    <div class="app" onClick={onLinkClick}>
      <nav class="nav">
        <a href="/" class="brand">
          Sightline
        </a>
        {NAV.map(([href, label]) => (
          <a href={href} class={section === href ? "active" : ""} data-testid={`nav-${label.toLowerCase()}`}>
            {label}
          </a>
        ))}
      </nav>
      <main>
        <Page />
      </main>
    </div>
  );
}

render(<App />, document.getElementById("app") as HTMLElement);
