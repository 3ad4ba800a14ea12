//! The plans in force, swapped whole on reload.
//!
//! A reload (SIGHUP, the admin API, or a change on disk found by polling
//! `changed_on_disk`) loads and checks everything again; a set with errors
//! is refused and the old one stays. Calls hold the `Arc<Plan>` they started
//! with, so a swap never touches a call in progress. The wiring (signals,
//! HTTP, the polling task) belongs to the call/ops rooms; this file only
//! decides and counts `conmutador_dialplan_reload_total{result}`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use super::{Diagnostic, Dialplans, load_dir};

pub struct DialplanStore {
    dir: PathBuf,
    queues: Vec<String>,
    current: RwLock<Arc<Dialplans>>,
    /// What the files looked like when the plans in force were loaded.
    stamp: Mutex<u64>,
}

impl DialplanStore {
    /// Loads the plans for the first time; errors mean the gateway must not
    /// start.
    pub fn open(
        dir: &Path,
        queues: &[String],
    ) -> Result<(DialplanStore, Vec<Diagnostic>), Vec<Diagnostic>> {
        let stamp = fingerprint(dir);
        let (set, warnings) = load_dir(dir, queues)?;
        Ok((
            DialplanStore {
                dir: dir.to_path_buf(),
                queues: queues.to_vec(),
                current: RwLock::new(Arc::new(set)),
                stamp: Mutex::new(stamp),
            },
            warnings,
        ))
    }

    /// The plans in force (cheap: one `Arc` clone).
    pub fn current(&self) -> Arc<Dialplans> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Loads again. On success the new set replaces the old at once and the
    /// warnings come back; on errors nothing changes and the errors come
    /// back (and are logged).
    pub fn reload(&self) -> Result<Vec<Diagnostic>, Vec<Diagnostic>> {
        let stamp = fingerprint(&self.dir);
        match load_dir(&self.dir, &self.queues) {
            Ok((set, warnings)) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
                *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = stamp;
                metrics::counter!(crate::ops::metrics::DIALPLAN_RELOAD_TOTAL, "result" => "ok")
                    .increment(1);
                tracing::info!(dir = %self.dir.display(), warnings = warnings.len(), "dialplans reloaded");
                Ok(warnings)
            }
            Err(diags) => {
                // Remember the broken files so polling does not retry (and
                // log) the same errors every tick.
                *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) = stamp;
                metrics::counter!(crate::ops::metrics::DIALPLAN_RELOAD_TOTAL, "result" => "error")
                    .increment(1);
                for d in diags.iter().filter(|d| d.is_error()) {
                    tracing::error!("dialplan reload refused:\n{d}");
                }
                Err(diags)
            }
        }
    }

    /// True when plan or prompt files changed since the last (attempted)
    /// load: for a polling watcher.
    pub fn changed_on_disk(&self) -> bool {
        fingerprint(&self.dir) != *self.stamp.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A hash of the names, sizes and modification times of the plan files and
/// prompt files (what a reload reads).
fn fingerprint(dir: &Path) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut entries: Vec<(PathBuf, u64, Option<SystemTime>)> = Vec::new();
    let mut visit = |d: &Path, exts: &[&str]| {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| exts.contains(&x))
                    && let Ok(m) = e.metadata()
                {
                    entries.push((p, m.len(), m.modified().ok()));
                }
            }
        }
    };
    visit(dir, &["toml"]);
    for lang in super::model::LANGUAGES {
        visit(&dir.join("prompts").join(lang), &["wav", "toml"]);
    }
    entries.sort();
    let mut h = DefaultHasher::new();
    entries.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_swaps_good_plans_and_refuses_bad_ones() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans");
        let dir = tempfile::tempdir().expect("temp dir");
        for lang in ["es-MX", "en"] {
            let to = dir.path().join("prompts").join(lang);
            std::fs::create_dir_all(&to).expect("mkdir");
            for e in std::fs::read_dir(shipped.join("prompts").join(lang))
                .expect("prompts")
                .flatten()
            {
                std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
            }
        }
        let plan = std::fs::read_to_string(shipped.join("mexitel.toml")).expect("plan");
        std::fs::write(dir.path().join("mexitel.toml"), &plan).expect("write");
        let queues: Vec<String> = [
            "pasaportes",
            "matricula",
            "visas",
            "registro_civil",
            "proteccion",
            "operador",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (store, _) = DialplanStore::open(dir.path(), &queues).expect("opens");
        let before = store.current();
        let call_plan = before.route("mexitel").expect("plan");
        assert!(!store.changed_on_disk());

        // A broken edit is refused; the old plans stay in force.
        std::fs::write(
            dir.path().join("mexitel.toml"),
            plan.replace("next = \"idioma\"", "next = \"idoma\""),
        )
        .expect("write");
        let errs = store.reload().expect_err("refused");
        assert!(
            errs.iter()
                .any(|d| d.message.contains("unknown node \"idoma\""))
        );
        assert!(Arc::ptr_eq(&before, &store.current()));
        assert!(
            !store.changed_on_disk(),
            "a refused load is not retried until the files change"
        );

        // A good edit replaces the set; the call keeps its plan.
        std::fs::write(
            dir.path().join("mexitel.toml"),
            plan.replace("timeout = \"6s\"", "timeout = \"7s\""),
        )
        .expect("write");
        store.reload().expect("reloads");
        assert!(!Arc::ptr_eq(&before, &store.current()));
        assert_eq!(call_plan.name, "mexitel");
        let super::super::model::NodeKind::Menu(m) =
            &store.current().route("mexitel").expect("plan").nodes["menu_principal"].kind
        else {
            panic!("menu")
        };
        assert_eq!(m.timeout, std::time::Duration::from_secs(7));
    }
}
