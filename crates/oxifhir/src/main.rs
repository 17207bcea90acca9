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

fn main() -> std::process::ExitCode {
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
