//! The file through which an operation script reads and rewrites its instance's runtime
//! properties (`RHAIFLOW_RUNTIME_PROPERTIES`): an anonymous file in memory (memfd), which the
//! script opens by the path `/proc/<rhaiflow's pid>/fd/<n>`. Nothing of it is ever on disk,
//! so nothing is left behind in the temp folder, whatever ends the run (a SIGKILL included).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd};

pub struct RuntimeFile {
    file: File,
}

impl RuntimeFile {
    /// A file holding `text`.
    pub fn holding(text: &str) -> std::io::Result<RuntimeFile> {
        // SAFETY: memfd_create takes a NUL-terminated name and flags; on success the new
        // descriptor is ours alone, and File takes ownership of it.
        let fd = unsafe { libc::memfd_create(c"rhaiflow-runtime-properties".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut file = unsafe { File::from_raw_fd(fd) };
        file.write_all(text.as_bytes())?;
        Ok(RuntimeFile { file })
    }

    /// The path another process opens it by.
    pub fn path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.file.as_raw_fd())
    }

    /// What it holds now (as the script left it).
    pub fn contents(&mut self) -> std::io::Result<String> {
        let mut text = String::new();
        self.file.seek(SeekFrom::Start(0))?;
        self.file.read_to_string(&mut text)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_process_reads_and_rewrites_it_by_its_path() {
        let mut file = RuntimeFile::holding(r#"{"ip": "10.0.0.1"}"#).unwrap();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"grep -q 10.0.0.1 "$P" && printf '{"ip": "10.0.0.2"}' > "$P""#)
            .env("P", file.path())
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(file.contents().unwrap(), r#"{"ip": "10.0.0.2"}"#);
    }
}
