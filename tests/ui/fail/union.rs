use atomic_persist::Persist;

#[derive(Persist)]
#[persist(path = "bits.bin")]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
