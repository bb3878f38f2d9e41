use atomic_persist::Persist;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "settings.toml", envelope = true, version = 1)]
struct SettingsV1 {
    theme: String,
}

#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "settings.toml", envelope = true, migrate_from = SettingsV1)]
struct Settings {
    theme: String,
}

fn main() {}
