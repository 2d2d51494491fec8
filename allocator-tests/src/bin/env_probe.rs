//! Probe for env_bad_values: prints the rate it runs with, allocates a
//! little, and exits with the status given as its first argument.
#[global_allocator]
static A: memprof::Sampled<std::alloc::System> = memprof::Sampled::new(std::alloc::System);

fn main() {
    let v: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    println!("rate {}", memprof::rate());
    drop(v);
    let code: i32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    std::process::exit(code);
}
