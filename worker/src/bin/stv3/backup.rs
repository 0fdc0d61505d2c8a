//! `stv3 backup upload --from DIR --name REGION --retention N`: sends the database
//! dumps in DIR to the S3-compatible store the environment names (`STV3_S3_*`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`) and deletes the oldest beyond N. The
//! upload step of the operator's backup CronJob; see worker::backup.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use worker::backup::{self, S3Target};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(clap::Subcommand)]
enum BackupCommand {
    /// Upload the dumps in a directory to S3, then apply the retention.
    Upload(UploadArgs),
}

#[derive(clap::Args)]
struct UploadArgs {
    /// The directory the dump step wrote into.
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The dumps' name (`<name>-<UTC time>.sql.gz`): the region's.
    #[arg(long, value_name = "NAME")]
    name: String,
    /// How many dumps of this name to keep in the bucket.
    #[arg(long, value_name = "N", default_value_t = 7)]
    retention: usize,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let BackupCommand::Upload(args) = args.command;
    worker::install_crypto_provider();
    let target = S3Target::from_env(|name| std::env::var(name).ok())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(backup::upload(
        &target,
        &args.from,
        &args.name,
        args.retention,
    ))?;
    let bucket = &target.bucket;
    for (key, size) in &report.uploaded {
        println!("uploaded s3://{bucket}/{key} ({size} bytes)");
    }
    for key in &report.removed {
        println!("removed s3://{bucket}/{key} (retention {})", args.retention);
    }
    Ok(ExitCode::SUCCESS)
}
