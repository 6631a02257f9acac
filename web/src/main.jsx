// The studio's shell: top bar, routes, login guard.
import { render } from "preact";
import { auth } from "./api.js";
import { match, navigate, useRoute } from "./router.js";
import { LoginPage } from "./pages/login.jsx";
import { ProjectsPage } from "./pages/projects.jsx";
import { ProjectPage } from "./pages/project.jsx";
import { ImagesPage } from "./pages/images.jsx";
import { ImageDetailPage } from "./pages/image-detail.jsx";
import { AnnotatePage } from "./pages/annotate.jsx";
import { ModelsPage } from "./pages/models.jsx";
import { TrainPage } from "./pages/train.jsx";
import { VersionPage } from "./pages/version.jsx";
import { EvaluationPage } from "./pages/evaluation.jsx";
import { ComparePage } from "./pages/compare.jsx";
import { PredictPage } from "./pages/predict.jsx";
import { TokensPage } from "./pages/tokens.jsx";
import { AllModelsPage } from "./pages/all-models.jsx";

const V = "/projects/:projectId/views/:viewId";
const ROUTES = [
  ["/login", LoginPage],
  ["/", ProjectsPage],
  ["/projects", ProjectsPage],
  ["/tokens", TokensPage],
  ["/models", AllModelsPage],
  ["/projects/:projectId", ProjectPage],
  [`${V}/images`, ImagesPage],
  [`${V}/images/:imageId`, ImageDetailPage],
  [`${V}/annotate`, AnnotatePage],
  [`${V}/models`, ModelsPage],
  [`${V}/train`, TrainPage],
  [`${V}/versions/:versionId`, VersionPage],
  [`${V}/versions/:versionId/evaluation`, EvaluationPage],
  [`${V}/compare`, ComparePage],
  [`${V}/predict`, PredictPage],
];

function TopBar({ path }) {
  return (
    <header class="topbar">
      <a class="brand" href="#/">
        <span class="logo" aria-hidden="true">◆</span> visiontrain
      </a>
      <nav>
        <a href="#/" class={path === "/" || path.startsWith("/projects") ? "active" : ""}>
          Projects
        </a>
        {/* Every model of every project; each view's own library is its Models tab. */}
        <a href="#/models" class={path === "/models" ? "active" : ""} data-testid="nav-models">
          Models
        </a>
        <a href="#/tokens" class={path === "/tokens" ? "active" : ""}>
          API tokens
        </a>
        <a href="/docs" target="_blank" rel="noopener">
          API docs
        </a>
        <button
          class="link"
          onClick={() => {
            auth.clear();
            navigate("/login");
          }}
        >
          Sign out
        </button>
      </nav>
    </header>
  );
}

function NotFound({ path }) {
  return (
    <main class="page">
      <h1>Nothing here</h1>
      <p>
        There is no page at <code>{path}</code>. <a href="#/">Go to your projects</a>.
      </p>
    </main>
  );
}

function App() {
  const { path, query } = useRoute();
  if (!auth.token && path !== "/login") return <LoginPage query={{ next: path === "/" ? undefined : path }} />;
  for (const [pattern, Page] of ROUTES) {
    const params = match(pattern, path);
    if (params) {
      if (Page === LoginPage) return <LoginPage query={query} />;
      // key: a different project/view/version remounts the page (fresh state, no stale data).
      return (
        <>
          <TopBar path={path} />
          <Page key={path} {...params} query={query} />
        </>
      );
    }
  }
  return (
    <>
      <TopBar path={path} />
      <NotFound path={path} />
    </>
  );
}

auth.restore();
const root = document.getElementById("app");
root.textContent = ""; // drop the "Loading the studio…" placeholder
render(<App />, root);
