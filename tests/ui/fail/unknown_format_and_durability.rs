use atomic_persist::Persist;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "settings.conf", format = "ini", durability = "paranoid")]
struct Settings {
    theme: String,
}

fn main() {}
