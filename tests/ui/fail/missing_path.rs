use atomic_persist::Persist;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Persist)]
#[persist(envelope = true)]
struct Settings {
    theme: String,
}

fn main() {}
