//! The `oxifhir` command: `serve` runs the FHIR server, `migrate` prepares a database, `import`
//! loads data, `export` fetches a Bulk Data export from a server, `synth` generates test data,
//! `bench` measures it.

mod bench;
mod bulk_export;
mod cli;
mod import;
mod serve;
mod synth;

use clap::Parser;

/// mimalloc instead of the system allocator: import and serving allocate many small values on
/// one thread and free them on another, which glibc's allocator handles poorly (a third of an
/// import's parsing time went to its arena bookkeeping).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// SQLite allocates through the C library's `malloc`, from whichever blocking thread runs a
/// statement. glibc gives such threads arenas of their own (up to eight per core) and keeps
/// what is freed in each, so an export's scans, spread over the blocking pool, left the server
/// 20–30 MiB larger (three exports of a million resources: peak 123 MiB resident with the
/// default, 101 MiB with one arena per core, at the same rate). One arena per core, then.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
    // SAFETY: `mallopt` only sets one of glibc's allocator tunables; it is called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    let cli = cli::Cli::parse();
    cli::init_logging(&cli.log_format, &cli.command);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("oxifhir: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("oxifhir: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
