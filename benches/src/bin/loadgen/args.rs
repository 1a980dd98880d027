//! Command-line pieces the subcommands share: the runtime to run on, and flag values.

/// `current` (a current-thread runtime) or a number of worker threads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Runtime {
    Current,
    Workers(usize),
}

impl Runtime {
    pub(crate) fn parse(s: &str) -> Result<Runtime, String> {
        match s {
            "current" | "1" => Ok(Runtime::Current),
            n => n
                .parse::<usize>()
                .map(|n| Runtime::Workers(n.max(1)))
                .map_err(|_| format!("--runtime: expected `current` or a number, got {n:?}")),
        }
    }

    pub(crate) fn arg(self) -> String {
        match self {
            Runtime::Current => "current".into(),
            Runtime::Workers(n) => n.to_string(),
        }
    }

    pub(crate) fn build(self) -> std::io::Result<tokio::runtime::Runtime> {
        match self {
            Runtime::Current => tokio::runtime::Builder::new_current_thread()
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
