//! Churn variant: `dhat` 0.3 in heap mode, which records every allocation
//! with its backtrace. The profiler starts before the clock; its JSON goes
//! to a file in the temp dir, written after the result is printed (outside
//! the timing and the peak-RSS reading) and removed. Run through
//! `cargo bench -p memprof-benches --bench churn`.
#[global_allocator]
static A: dhat::Alloc = dhat::Alloc;
include!("churn/workload.rs");

/// Stops the profiler (which writes its file), then removes the file.
struct Stop {
    profiler: Option<dhat::Profiler>,
    path: std::path::PathBuf,
}

impl Drop for Stop {
    fn drop(&mut self) {
        drop(self.profiler.take());
        let _ = std::fs::remove_file(&self.path);
    }
}

fn main() {
    churn::main_with(|| {
        let path = std::env::temp_dir().join(format!("churn-dhat-{}.json", std::process::id()));
        let profiler = dhat::Profiler::builder().file_name(&path).build();
        Stop {
            profiler: Some(profiler),
            path,
        }
    });
}
