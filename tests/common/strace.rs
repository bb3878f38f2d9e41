//! The one parser of `strace -o` logs the tests share: each syscall line as a [`Call`].

use std::collections::BTreeMap;

/// The calls that can flush, and the renames that publish: what a flush count traces.
pub const FLUSHES_AND_RENAMES: &str =
    "open,openat,fsync,fdatasync,syncfs,sync,sync_file_range,msync,rename,renameat,renameat2";

/// One syscall line of an strace log.
#[derive(Clone, Debug)]
pub struct Call {
    /// The thread that made it (`strace -f` prefixes each line with it); 0 without.
    pub pid: u32,
    pub name: String,
    /// The arguments as printed, without the parentheses.
    pub args: String,
    /// The return value as printed (`0`, `-1`, `4`, ...).
    pub ret: String,
    /// The errno name of a failed call (`EIO`), empty otherwise.
    pub errno: String,
    /// strace injected the failure (`-e inject=`).
    pub injected: bool,
    /// This call's invocation number among calls of the same name (1-based).
    pub nth: usize,
}

impl Call {
    /// The first argument (a descriptor, for most calls).
    pub fn first_arg(&self) -> &str {
        self.args.split(", ").next().unwrap_or("")
    }

    /// The first quoted argument (a path), if any.
    pub fn quoted(&self) -> Option<&str> {
        self.args.split('"').nth(1)
    }

    /// Whether the call returned 0.
    pub fn ok(&self) -> bool {
        self.ret == "0"
    }
}

/// Parses an `strace -o` log, with or without `-f`'s pid prefixes. Lines that are not a
/// whole call (signals, exits, `<... resumed>` halves) are left out, so an interrupted
/// call counts once, by its first half only when it finished there.
pub fn parse(log: &str) -> Vec<Call> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for line in log.lines() {
        let (pid, line) = match line.split_once(' ') {
            Some((p, rest)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (p.parse().unwrap_or(0), rest.trim_start())
            }
            _ => (0, line),
        };
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() || !line[name.len()..].starts_with('(') {
            continue;
        }
        let Some((head, tail)) = line.rsplit_once(" = ") else {
            continue; // `<unfinished ...>`
        };
        let args = head[name.len() + 1..].trim_end().trim_end_matches(')');
        let mut tail = tail.split(' ');
        let ret = tail.next().unwrap_or("").to_owned();
        let errno = match ret.as_str() {
            "-1" => tail.next().unwrap_or("").to_owned(),
            _ => String::new(),
        };
        let nth = counts.entry(name.clone()).or_default();
        *nth += 1;
        out.push(Call {
            pid,
            nth: *nth,
            name,
            args: args.to_owned(),
            ret,
            errno,
            injected: line.ends_with("(INJECTED)"),
        });
    }
    out
}
