use atomic_persist::Persist;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "settings.toml", envelop = true)]
struct Settings {
    theme: String,
}

fn main() {}
