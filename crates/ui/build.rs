//! Builds the web UI in `ui/` and embeds its output.
//!
//! `npm ci` runs when `ui/node_modules` is missing or older than `ui/package-lock.json` (falling
//! back to `npm install --no-save` of the same locked versions when `npm ci` refuses), then
//! `npm run build` type-checks and bundles the app into `$OUT_DIR/ui-dist`; the generated
//! `assets.rs` holds one `include_bytes!` per output file, so the binary needs nothing at run
//! time. Cargo re-runs this script only when a UI source file changes.
//!
//! `SIGHTLINE_UI_DIST=<dir>` embeds an already built `dist` folder instead (for packagers that
//! build the UI in a separate step, or machines without Node.js); `NPM` names the npm executable.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

type BuildResult<T> = Result<T, String>;

fn main() {
    if let Err(message) = run() {
        eprintln!("\nerror: cannot build the Sightline web UI: {message}\n");
        std::process::exit(1);
    }
}

fn run() -> BuildResult<()> {
    let manifest = PathBuf::from(env("CARGO_MANIFEST_DIR")?);
    let ui = manifest.join("../../ui");
    let out = PathBuf::from(env("OUT_DIR")?);
    for input in [
        "src",
        "public",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
    ] {
        println!("cargo:rerun-if-changed={}", ui.join(input).display());
    }
    println!("cargo:rerun-if-env-changed=SIGHTLINE_UI_DIST");
    println!("cargo:rerun-if-env-changed=NPM");

    let dist = match std::env::var_os("SIGHTLINE_UI_DIST") {
        Some(dir) => {
            let dist = PathBuf::from(dir);
            println!("cargo:rerun-if-changed={}", dist.display());
            dist
        }
        None => {
            let dist = out.join("ui-dist");
            npm_build(&ui, &dist)?;
            dist
        }
    };
    if !dist.join("index.html").is_file() {
        return Err(format!("{} has no index.html", dist.display()));
    }

    let mut files = Vec::new();
    collect(&dist, &dist, &mut files)?;
    files.sort();
    let mut code =
        String::from("/// Every file of the built UI: path relative to the root, and its bytes.\n");
    code.push_str("pub static ASSETS: &[(&str, &[u8])] = &[\n");
    for (rel, abs) in &files {
        let _ = writeln!(
            code,
            "    ({rel:?}, include_bytes!({:?})),",
            abs.display().to_string()
        );
    }
    code.push_str("];\n");
    std::fs::write(out.join("assets.rs"), code).map_err(|e| format!("cannot write assets.rs: {e}"))
}

fn env(name: &str) -> BuildResult<String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

fn npm_build(ui: &Path, dist: &Path) -> BuildResult<()> {
    let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".to_owned());
    match Command::new(&npm).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => {
            return Err(format!(
                "`{npm} --version` failed: Node.js 18+ and npm are needed to build the UI \
                 (install them, e.g. `apt-get install nodejs npm`), or set SIGHTLINE_UI_DIST to a \
                 folder holding an already built UI"
            ))
        }
    }
    let lock = ui.join("package-lock.json");
    let installed = ui.join("node_modules/.package-lock.json");
    if modified(&installed).is_none() || modified(&installed) < modified(&lock) {
        if let Err(ci) = npm_run(&npm, ui, &["ci", "--no-audit", "--no-fund"]) {
            // `npm ci` refuses a lock file that lacks another platform's optional packages, which
            // registry mirrors without those packages produce; `npm install` then still installs
            // the locked versions (and `--no-save` leaves the lock file as committed).
            println!("cargo:warning={ci}; retrying with `npm install --no-save`");
            npm_run(
                &npm,
                ui,
                &["install", "--no-save", "--no-audit", "--no-fund"],
            )?;
        }
    }
    let dist_arg = dist.display().to_string();
    npm_run(
        &npm,
        ui,
        &["run", "build", "--", "--outDir", &dist_arg, "--emptyOutDir"],
    )
}

fn npm_run(npm: &str, ui: &Path, args: &[&str]) -> BuildResult<()> {
    let status = Command::new(npm)
        .args(args)
        .current_dir(ui)
        .status()
        .map_err(|e| format!("cannot run `{npm} {}`: {e}", args.join(" ")))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{npm} {}` in {} failed ({status}); its output is above",
            args.join(" "),
            ui.display()
        ))
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) -> BuildResult<()> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            collect(root, &path, files)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .map_err(|e| e.to_string())?
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let abs = path
                .canonicalize()
                .map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
            files.push((rel, abs));
        }
    }
    Ok(())
}
