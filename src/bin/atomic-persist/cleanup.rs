//! Signals during `write`: remove the temporary file, never the committed one.
//!
//! SIGINT, SIGTERM and SIGHUP would end the process without running destructors, and
//! Rust ignores SIGPIPE, so without this module a signal would leave a temporary file.
//! Here a thread (`signal-hook`'s iterator) receives those four signals and consults one
//! mutex-guarded [`State`]:
//!
//! - `Preparing` (before the temporary file exists): exit with 128 + N.
//! - `Writing` (standard input being copied): remove the temporary file, if it has a
//!   name, and exit with 128 + N, *still holding the lock*, so the main thread cannot
//!   begin the commit.
//! - `Finishing` (commit, or removal after an error): the signal is ignored; the main
//!   thread finishes and its exit status tells what happened to the file.
//!
//! The main thread holds the lock while it creates the temporary file (so no temporary
//! file exists that a signal does not know of) and while it moves to `Finishing` and
//! commits (so a signal never removes a name that was already renamed over the
//! destination). `Finishing` is never left: a late signal finds it and does nothing.
//!
//! On platforms without Unix signals this is a no-op with the same interface.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use atomic_persist::{AtomicFile, Result};

/// Where `write` is, as the signal thread needs to know it.
#[derive(Debug)]
enum State {
    /// No temporary file yet.
    Preparing,
    /// Standard input is being copied into the temporary file at this path (`None` for an
    /// anonymous file, which disappears with the process).
    #[cfg_attr(not(unix), allow(dead_code))] // only the Unix signal thread reads it
    Writing(Option<PathBuf>),
    /// The commit (or the removal after an error) has begun: signals no longer act.
    Finishing,
}

/// The signal handling of one `write`.
#[derive(Debug)]
pub struct Cleanup {
    state: Arc<Mutex<State>>,
}

impl Cleanup {
    /// Starts handling SIGINT, SIGTERM, SIGHUP and SIGPIPE.
    pub fn install() -> std::io::Result<Cleanup> {
        let state = Arc::new(Mutex::new(State::Preparing));
        #[cfg(unix)]
        unix::spawn_handler(Arc::clone(&state))?;
        Ok(Cleanup { state })
    }

    /// Creates the temporary file with signals held off, and registers its name.
    pub fn create(&self, create: impl FnOnce() -> Result<AtomicFile>) -> Result<AtomicFile> {
        let mut state = lock(&self.state);
        let file = create()?;
        *state = State::Writing(file.temp_path());
        Ok(file)
    }

    /// Runs `finish` (the commit, or the removal of the temporary file) with signals held
    /// off; they stay ignored afterwards, until the process exits.
    pub fn finish<T>(self, finish: impl FnOnce() -> T) -> T {
        let mut state = lock(&self.state);
        *state = State::Finishing;
        let out = finish();
        drop(state);
        out
    }
}

/// Locks the state; a panic elsewhere does not make it less true.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(unix)]
mod unix {
    use std::io::{self, Write as _};
    use std::sync::{Arc, Mutex};

    use signal_hook::consts::{SIGHUP, SIGINT, SIGPIPE, SIGTERM};
    use signal_hook::iterator::Signals;

    use super::{State, lock};

    /// Registers the handlers and starts the thread that acts on the signals.
    pub(super) fn spawn_handler(state: Arc<Mutex<State>>) -> io::Result<()> {
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP, SIGPIPE])?;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signo in signals.forever() {
                    on_signal(&state, signo);
                }
            })?;
        Ok(())
    }

    /// Acts on one signal as the module documentation says; returns only when it is
    /// ignored.
    fn on_signal(state: &Mutex<State>, signo: i32) {
        let state = lock(state);
        match &*state {
            State::Finishing => return,
            State::Writing(Some(temp)) => {
                if let Err(e) = std::fs::remove_file(temp)
                    && e.kind() != io::ErrorKind::NotFound
                {
                    let _ = writeln!(
                        io::stderr(),
                        "atomic-persist: cannot remove temporary file {}: {e}",
                        temp.display()
                    );
                }
            }
            State::Writing(None) | State::Preparing => {}
        }
        // Exit with the lock held: the main thread must not start a commit now.
        std::process::exit(128 + signo);
    }
}
