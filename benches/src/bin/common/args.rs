//! Flag values on the command line.

/// The value after `flag`.
pub(crate) fn arg_value(
    it: &mut impl Iterator<Item = String>,
    flag: &str,
) -> Result<String, String> {
    it.next().ok_or_else(|| format!("{flag} needs a value"))
}

/// `v` parsed, or an error naming `flag`.
pub(crate) fn parse<T: std::str::FromStr>(v: &str, flag: &str) -> Result<T, String> {
    v.trim()
        .parse::<T>()
        .map_err(|_| format!("{flag}: bad value {v:?}"))
}

/// A duration in (fractional) seconds.
pub(crate) fn secs(v: &str, flag: &str) -> Result<std::time::Duration, String> {
    let s: f64 = parse(v, flag)?;
    std::time::Duration::try_from_secs_f64(s).map_err(|_| format!("{flag}: bad value {v:?}"))
}

/// The `//!` doc comment at the top of a binary's source, as its `--help` text.
pub(crate) fn usage_from(source: &str) -> String {
    source
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
        .collect::<Vec<_>>()
        .join("\n")
}
