use atomic_persist::Persist;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "settings.toml", envelope = true, version = 1)]
struct SettingsV1 {
    theme: String,
}

// No `impl From<SettingsV1> for Settings`.
#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "settings.toml", envelope = true, version = 2, migrate_from = SettingsV1)]
struct Settings {
    theme: String,
    font_size: u32,
}

fn main() {}
