//! Command-line pieces the subcommands share: the runtime to run on, and flag values.

/// `current` (a current-thread runtime), `local` (a current-thread runtime whose main future
/// runs in a `LocalSet`, and whose load-generating tasks are `spawn_local`ed there), or a number
/// of worker threads of a multi-thread runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runtime {
    Current,
    Local,
    Workers(usize),
}

impl Runtime {
    pub(crate) fn parse(s: &str) -> Result<Runtime, String> {
        match s {
            "current" | "1" => Ok(Runtime::Current),
            "local" => Ok(Runtime::Local),
            n => n
                .parse::<usize>()
                .map(|n| Runtime::Workers(n.max(1)))
                .map_err(|_| {
                    format!("--runtime: expected `current`, `local` or a number, got {n:?}")
                }),
        }
    }

    pub(crate) fn arg(self) -> String {
        match self {
            Runtime::Current => "current".into(),
            Runtime::Local => "local".into(),
            Runtime::Workers(n) => n.to_string(),
        }
    }

    /// Builds the runtime and runs `main` on it to the end (inside a `LocalSet` for `local`).
    pub(crate) fn run<F: std::future::Future>(self, main: F) -> std::io::Result<F::Output> {
        let rt = self.build()?;
        Ok(match self {
            Runtime::Local => tokio::task::LocalSet::new().block_on(&rt, main),
            _ => rt.block_on(main),
        })
    }

    /// Spawns a load-generating task: onto the `LocalSet` for `local`, else onto the runtime.
    pub(crate) fn spawn<F>(self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Runtime::Local => tokio::task::spawn_local(task),
            _ => tokio::spawn(task),
        }
    }

    fn build(self) -> std::io::Result<tokio::runtime::Runtime> {
        match self {
            Runtime::Current | Runtime::Local => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            Runtime::Workers(n) => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .enable_all()
                .build(),
        }
    }
}

pub(crate) fn arg_value(
    it: &mut impl Iterator<Item = String>,
    flag: &str,
) -> Result<String, String> {
    it.next().ok_or_else(|| format!("{flag} needs a value"))
}

pub(crate) fn list<T: std::str::FromStr>(s: &str, flag: &str) -> Result<Vec<T>, String> {
    s.split(',')
        .map(|v| {
            v.trim()
                .parse::<T>()
                .map_err(|_| format!("{flag}: bad value {v:?}"))
        })
        .collect()
}
