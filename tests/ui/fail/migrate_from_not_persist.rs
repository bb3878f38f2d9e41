use atomic_persist::Persist;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct SettingsV1 {
    theme: String,
}

#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "settings.toml", envelope = true, version = 2, migrate_from = SettingsV1)]
struct Settings {
    theme: String,
}

impl From<SettingsV1> for Settings {
    fn from(v1: SettingsV1) -> Settings {
        Settings { theme: v1.theme }
    }
}

fn main() {}
