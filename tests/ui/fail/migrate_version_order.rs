use atomic_persist::Persist;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "settings.toml", envelope = true, version = 2)]
struct SettingsV2 {
    theme: String,
}

// Migrating from a type whose version is not lower.
#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "settings.toml", envelope = true, version = 2, migrate_from = SettingsV2)]
struct Settings {
    theme: String,
}

impl From<SettingsV2> for Settings {
    fn from(v2: SettingsV2) -> Settings {
        Settings { theme: v2.theme }
    }
}

fn main() {}
