//! Permissions: a new file gets `0o666 & !umask`; an existing file keeps its mode and
//! owner; an explicit `mode()` wins; the temporary file is never readable by anyone the
//! final file is not readable by, not even between its creation and a chmod.

mod common;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use atomic_persist::WriteOptions;
use common::{meta, mode};

/// The three ways of saving: one call, streamed, anonymous temp.
fn save(opts: &WriteOptions, path: &Path, bytes: &[u8], how: &str) {
    match how {
        "write" => opts.write(path, bytes).unwrap(),
        "anonymous" => opts
            .clone()
            .anonymous_temp(true)
            .write(path, bytes)
            .unwrap(),
        "stream" => {
            let mut f = opts.create(path).unwrap();
            f.write_all(bytes).unwrap();
            f.commit().unwrap();
        }
        _ => unreachable!(),
    }
}

const HOW: [&str; 3] = ["write", "stream", "anonymous"];

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn set_umask(mask: u32) {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));
}

#[test]
fn a_new_file_gets_0666_less_the_umask() {
    let test = "a_new_file_gets_0666_less_the_umask";
    if let Some(dir) = common::role() {
        // The child owns its umask; the test runner's threads share one.
        for umask in [0o027, 0o002, 0o077, 0o000] {
            set_umask(umask);
            for how in HOW {
                for no_clobber in [false, true] {
                    let path = Path::new(&dir).join(format!("{how}-{umask:o}-{no_clobber}"));
                    let opts = WriteOptions::new().no_clobber(no_clobber);
                    save(&opts, &path, b"new", how);
                    assert_eq!(mode(&path), 0o666 & !umask, "{}", path.display());
                }
            }
        }
        println!("umask-ok");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    common::run_child(
        common::child(test, dir.path().to_str().unwrap()),
        "umask-ok",
    );
    assert_eq!(mode(&dir.path().join("write-27-false")), 0o640);
    assert_eq!(mode(&dir.path().join("stream-2-true")), 0o664);
    assert_eq!(mode(&dir.path().join("anonymous-0-false")), 0o666);
    assert!(common::temps(dir.path()).is_empty());
}

#[test]
fn an_existing_files_mode_is_kept_even_past_the_umask() {
    let umask = common::current_umask();
    // 0o666 and 0o646 are wider than any usual umask allows: kept exactly.
    for original in [
        0o640, 0o600, 0o604, 0o444, 0o666, 0o646, 0o755, 0o2750, 0o4755, 0o1644,
    ] {
        for how in HOW {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.bin");
            std::fs::write(&path, b"old").unwrap();
            chmod(&path, original);
            assert_eq!(mode(&path), original);
            save(&WriteOptions::new(), &path, b"new", how);
            assert_eq!(std::fs::read(&path).unwrap(), b"new");
            assert_eq!(
                mode(&path),
                original,
                "{how}: mode {original:o} became {:o} (umask {umask:o})",
                mode(&path)
            );
        }
    }
}

#[test]
fn an_explicit_mode_wins_over_the_existing_mode_and_the_umask() {
    let test = "an_explicit_mode_wins_over_the_existing_mode_and_the_umask";
    if let Some(dir) = common::role() {
        set_umask(0o077);
        let dir = Path::new(&dir);
        for how in HOW {
            // New file: exactly the mode asked for, not reduced by the umask.
            let new = dir.join(format!("new-{how}"));
            save(&WriteOptions::new().mode(0o644), &new, b"new", how);
            assert_eq!(mode(&new), 0o644, "{how}");
            // Existing file: the explicit mode replaces the preserved one, both ways.
            let old = dir.join(format!("old-{how}"));
            std::fs::write(&old, b"old").unwrap();
            chmod(&old, 0o644);
            save(&WriteOptions::new().mode(0o600), &old, b"new", how);
            assert_eq!(mode(&old), 0o600, "{how}");
            save(&WriteOptions::new().mode(0o664), &old, b"new", how);
            assert_eq!(mode(&old), 0o664, "{how}");
        }
        println!("mode-ok");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    common::run_child(common::child(test, dir.path().to_str().unwrap()), "mode-ok");
    assert_eq!(mode(&dir.path().join("new-write")), 0o644);
    assert_eq!(mode(&dir.path().join("old-anonymous")), 0o664);
}

#[test]
fn without_preserve_permissions_an_existing_file_gets_a_fresh_mode() {
    let umask = common::current_umask();
    for how in HOW {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.bin");
        std::fs::write(&path, b"old").unwrap();
        chmod(&path, 0o600);
        save(
            &WriteOptions::new().preserve_permissions(false),
            &path,
            b"new",
            how,
        );
        assert_eq!(mode(&path), 0o666 & !umask, "{how}");
    }
}

#[test]
fn owner_and_group_are_kept_when_root_rewrites_a_file() {
    let test = "owner_and_group_are_kept_when_root_rewrites_a_file";
    if !common::is_root() {
        return common::skip(test, "chown to 65534 needs root");
    }
    for original in [0o640, 0o600, 0o2750, 0o4755] {
        for how in HOW {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.bin");
            std::fs::write(&path, b"old").unwrap();
            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
            chmod(&path, original);
            save(&WriteOptions::new(), &path, b"new", how);
            let m = meta(&path);
            assert_eq!((m.uid(), m.gid()), (65534, 65534), "{how} {original:o}");
            // chown clears setuid/setgid: the mode must be set after the owner.
            assert_eq!(mode(&path), original, "{how}");
        }
    }
}

#[test]
fn an_unprivileged_writer_replaces_a_file_it_cannot_chown() {
    let test = "an_unprivileged_writer_replaces_a_file_it_cannot_chown";
    if let Some(dir) = common::role() {
        // As nobody, in a directory nobody may write, over a file owned by root.
        let path = Path::new(&dir).join("state.bin");
        for how in HOW {
            save(&WriteOptions::new(), &path, how.as_bytes(), how);
            assert_eq!(std::fs::read(&path).unwrap(), how.as_bytes());
        }
        println!("eperm-ok");
        return;
    }
    if !common::is_root() {
        return common::skip(test, "dropping privileges to uid 65534 needs root");
    }
    let top = tempfile::tempdir().unwrap();
    common::open_dir_to_all(top.path());
    let dir = top.path().join("nobodys");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let path = dir.join("state.bin");
    std::fs::write(&path, b"old").unwrap();
    chmod(&path, 0o644);
    let cmd = common::child_as_nobody(top.path(), test, dir.to_str().unwrap());
    common::run_child(cmd, "eperm-ok");
    // The owner could not be kept (EPERM is tolerated); the mode was.
    let m = meta(&path);
    assert_eq!((m.uid(), m.gid()), (65534, 65534));
    assert_eq!(mode(&path), 0o644);
    common::assert_only(&dir, &["state.bin"]);
}

#[test]
fn an_open_temp_file_already_has_the_final_mode_and_owner() {
    for (original, owner) in [(0o600, None), (0o640, Some(65534)), (0o444, None)] {
        if owner.is_some() && !common::is_root() {
            common::skip(
                "an_open_temp_file_already_has_the_final_mode_and_owner (chown)",
                "needs root",
            );
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.bin");
        std::fs::write(&path, b"old").unwrap();
        std::os::unix::fs::chown(&path, owner, owner).unwrap();
        chmod(&path, original);
        let before = meta(&path);
        let mut f = WriteOptions::new()
            .anonymous_temp(false)
            .create(&path)
            .unwrap();
        f.write_all(b"new").unwrap();
        let temp = f.temp_path().expect("a named temp");
        let t = std::fs::symlink_metadata(&temp).unwrap();
        assert_eq!(t.mode() & 0o7777, original, "temp mode");
        assert_eq!(
            (t.uid(), t.gid()),
            (before.uid(), before.gid()),
            "temp owner"
        );
        f.commit().unwrap();
        assert_eq!(mode(&path), original);
    }
}

/// The file's state as a sequence of syscalls leaves it: who owns it, and its mode.
#[derive(Clone, Copy, Debug, PartialEq)]
struct State {
    uid: u32,
    gid: u32,
    mode: u32,
}

/// Whether everyone who may read or write a file in `state` may also do so once it is
/// `fin`. Root is left out: it may do anything to either.
fn no_wider(state: State, fin: State) -> bool {
    let other = fin.mode & 0o7;
    let class = |bits: u32, same: bool, fin_bits: u32| {
        bits & !(other | if same { fin_bits } else { 0 }) == 0
    };
    class(state.mode & 0o7, false, 0)
        && class(
            (state.mode >> 3) & 0o7,
            state.gid == fin.gid,
            (fin.mode >> 3) & 0o7,
        )
        && (state.uid == 0
            || class(
                (state.mode >> 6) & 0o7,
                state.uid == fin.uid,
                (fin.mode >> 6) & 0o7,
            ))
}

/// Follows the temp file through `openat`, `fchown` and `fchmod` in an strace log, and
/// returns each state it was in, for each scenario (marked by an `openat` of
/// `/nonexistent/scenario-UID-GID-MODE`, the final state).
fn temp_states(log: &str) -> Vec<(State, Vec<State>)> {
    let mut scenarios: Vec<(State, Vec<State>)> = Vec::new();
    let mut fd: Option<String> = None;
    let octal = |s: &str| u32::from_str_radix(s.trim_start_matches('0'), 8).unwrap_or(0);
    for call in common::strace::parse(log) {
        if let Some(rest) = call
            .quoted()
            .and_then(|p| p.strip_prefix("/nonexistent/scenario-"))
        {
            let spec: Vec<u32> = rest.split('-').map(octal).collect();
            let fin = State {
                uid: spec[0],
                gid: spec[1],
                mode: spec[2],
            };
            scenarios.push((fin, Vec::new()));
            fd = None;
            continue;
        }
        let Some((_, states)) = scenarios.last_mut() else {
            continue;
        };
        let a: Vec<&str> = call.args.split(", ").collect();
        let new = call.args.contains("O_EXCL") || call.args.contains("O_TMPFILE");
        if call.name == "openat" && new {
            // The child runs with umask 0, so the mode passed is the mode the file gets.
            states.push(State {
                uid: 0,
                gid: 0,
                mode: octal(a[3]),
            });
            fd = Some(call.ret.clone());
            continue;
        }
        if fd.as_deref() != Some(a[0]) || !call.ok() {
            continue;
        }
        let mut s = *states.last().unwrap();
        match call.name.as_str() {
            "fchown" => {
                s.uid = a[1].parse().unwrap();
                s.gid = a[2].parse().unwrap();
                s.mode &= !0o6000; // chown clears setuid and setgid
            }
            "fchmod" => s.mode = octal(a[1]),
            _ => continue,
        }
        states.push(s);
    }
    scenarios
}

#[test]
fn the_temp_file_is_never_more_readable_than_the_final_file() {
    let test = "the_temp_file_is_never_more_readable_than_the_final_file";
    // (existing mode, owner) to rewrite; or (explicit mode, no owner) for a new file.
    let cases: [(u32, Option<u32>, bool); 7] = [
        (0o600, None, false),
        (0o640, None, false),
        (0o604, None, false),
        (0o640, Some(65534), false),
        (0o600, Some(65534), false),
        (0o2750, Some(65534), false),
        (0o600, None, true),
    ];
    if let Some(dir) = common::role() {
        set_umask(0);
        let dir = Path::new(&dir);
        for (i, (m, owner, explicit)) in cases.into_iter().enumerate() {
            for how in HOW {
                let path = dir.join(format!("{i}-{how}"));
                let opts = if explicit {
                    WriteOptions::new().mode(m)
                } else {
                    std::fs::write(&path, b"old").unwrap();
                    std::os::unix::fs::chown(&path, owner, owner).unwrap();
                    chmod(&path, m);
                    WriteOptions::new()
                };
                let o = owner.unwrap_or(0);
                // A marker in the trace: this scenario's final state.
                let _ = std::fs::File::open(format!("/nonexistent/scenario-{o:o}-{o:o}-{m:o}"));
                save(&opts, &path, b"new", how);
                let f = meta(&path);
                assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (o, o, m));
            }
        }
        println!("trace-ok");
        return;
    }
    if !common::is_root() {
        return common::skip(test, "the scenarios chown files to 65534, which needs root");
    }
    let Some(run) = common::trace_in_workdir(test, "openat,fchown,fchmod", "trace-ok") else {
        return;
    };
    let log = run.log;
    let scenarios = temp_states(&log);
    assert_eq!(
        scenarios.len(),
        cases.len() * HOW.len(),
        "scenarios in the trace"
    );
    let mut problems = Vec::new();
    for (i, (fin, states)) in scenarios.iter().enumerate() {
        assert!(!states.is_empty(), "no temp file created in scenario {i}");
        assert_eq!(
            states.last().map(|s| s.mode & 0o7777),
            Some(fin.mode),
            "scenario {i}: {states:?}"
        );
        for s in states {
            if !no_wider(*s, *fin) {
                problems.push(format!(
                    "scenario {} ({}): temp was {}:{} {:o} on the way to {}:{} {:o}",
                    i / HOW.len(),
                    HOW[i % HOW.len()],
                    s.uid,
                    s.gid,
                    s.mode,
                    fin.uid,
                    fin.gid,
                    fin.mode
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_readability_check_rejects_wider_states() {
    let fin = State {
        uid: 65534,
        gid: 65534,
        mode: 0o640,
    };
    assert!(no_wider(
        State {
            uid: 0,
            gid: 0,
            mode: 0o600
        },
        fin
    ));
    assert!(no_wider(fin, fin));
    assert!(
        !no_wider(
            State {
                uid: 0,
                gid: 0,
                mode: 0o644
            },
            fin
        ),
        "others may read"
    );
    assert!(
        !no_wider(
            State {
                uid: 0,
                gid: 0,
                mode: 0o640
            },
            fin
        ),
        "another group may read"
    );
    assert!(
        !no_wider(
            State {
                uid: 1000,
                gid: 65534,
                mode: 0o600
            },
            fin
        ),
        "another user may read"
    );
}

#[test]
fn the_group_is_kept_in_a_setgid_directory() {
    // New files in a setgid directory take the directory's group. A rewrite of a file
    // whose group differs must still keep the file's own group.
    let test = "the_group_is_kept_in_a_setgid_directory";
    if !common::is_root() {
        return common::skip(test, "chown of the directory needs root");
    }
    for how in HOW {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), None, Some(65534)).unwrap();
        chmod(dir.path(), 0o2755);
        let path = dir.path().join("state.bin");
        std::fs::write(&path, b"old").unwrap();
        let mine = rustix::process::getegid().as_raw();
        std::os::unix::fs::chown(&path, None, Some(mine)).unwrap();
        chmod(&path, 0o640);
        save(&WriteOptions::new(), &path, b"new", how);
        assert_eq!(
            meta(&path).gid(),
            mine,
            "{how}: group changed to the directory's"
        );
        assert_eq!(mode(&path), 0o640);
    }
}
