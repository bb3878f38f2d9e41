use atomic_persist::Persist;
use serde::{Deserialize, Serialize};

// DESIGN.md's sketch: without the envelope the version is not stored, so it is refused.
#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "settings.toml", envelope = false, version = 2)]
struct Explicit {
    theme: String,
}

#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "settings.toml", version = 2)]
struct Implicit {
    theme: String,
}

fn main() {}
