//! Only `path`: every other constant has its default.
use atomic_persist::{Durability, Persist};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Default, Persist)]
#[persist(path = "settings.toml")]
struct Settings {
    theme: String,
}

// Every key at once, in another order, and `envelope` as a bare word.
#[derive(Serialize, Deserialize, Default, Persist)]
#[persist(
    version = 3,
    envelope,
    durability = "none",
    format = "json-pretty",
    path = "/var/lib/job/state"
)]
struct Job {
    next: u64,
}

fn main() {
    assert_eq!(Settings::PATH, "settings.toml");
    assert_eq!(Settings::APP, None);
    assert_eq!(Settings::FORMAT, None);
    assert!(!Settings::ENVELOPE);
    assert_eq!(Settings::DURABILITY, Durability::Full);
    assert_eq!(Settings::VERSION, 0);
    assert!(Job::ENVELOPE);
    assert_eq!(Job::VERSION, 3);
    assert_eq!(Job::DURABILITY, Durability::None);
    assert_eq!(Job::FORMAT, Some(atomic_persist::AnyFormat::JsonPretty));
}
