use atomic_persist::Persist;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "settings.toml", envelope = true, version = "2")]
struct VersionAsString {
    theme: String,
}

#[derive(Serialize, Deserialize, Persist)]
#[persist(path = 7)]
struct PathAsNumber {
    theme: String,
}

#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "settings.toml", envelope = "yes")]
struct EnvelopeAsString {
    theme: String,
}

fn main() {}
