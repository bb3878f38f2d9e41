//! Without the `app-dirs` feature, `app` is refused at compile time.
use atomic_persist::Persist;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "settings.toml", app = "my-app")]
struct Settings {
    theme: String,
}

fn main() {}
