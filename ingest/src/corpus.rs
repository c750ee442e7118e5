//! Pre-signed corpus files: the simulator writes one (`--write-corpus`) and replays
//! it at full speed (`--corpus`), so benchmarks measure the pipeline, not signing.
//!
//! Format: the line `sealtrail-corpus v1`, the seed as 8 bytes little-endian, then
//! per record a u16 key length, the key, a u32 value length and the value (the Avro
//! single-object record exactly as it goes to Kafka), all little-endian.

use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::Path;

use anyhow::{bail, Context};

const MAGIC: &[u8] = b"sealtrail-corpus v1\n";

pub struct CorpusWriter {
    out: BufWriter<File>,
}

impl CorpusWriter {
    pub fn create(path: &Path, seed: u64) -> anyhow::Result<Self> {
        let file =
            File::create(path).with_context(|| format!("creating corpus {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(MAGIC)?;
        out.write_all(&seed.to_le_bytes())?;
        Ok(CorpusWriter { out })
    }

    pub fn write(&mut self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        self.out.write_all(&(key.len() as u16).to_le_bytes())?;
        self.out.write_all(key)?;
        self.out.write_all(&(value.len() as u32).to_le_bytes())?;
        self.out.write_all(value)?;
        Ok(())
    }

    pub fn finish(mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

pub struct CorpusReader {
    input: BufReader<File>,
    pub seed: u64,
}

impl CorpusReader {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file =
            File::open(path).with_context(|| format!("opening corpus {}", path.display()))?;
        let mut input = BufReader::with_capacity(1 << 20, file);
        let mut magic = vec![0; MAGIC.len()];
        input
            .read_exact(&mut magic)
            .with_context(|| format!("{} is not a corpus", path.display()))?;
        if magic != MAGIC {
            bail!("{} is not a sealtrail corpus (bad header)", path.display());
        }
        let mut seed = [0; 8];
        input.read_exact(&mut seed)?;
        Ok(CorpusReader {
            input,
            seed: u64::from_le_bytes(seed),
        })
    }

    /// The next (key, value), or None at the end of the file.
    pub fn next_record(&mut self) -> anyhow::Result<Option<(Vec<u8>, Vec<u8>)>> {
        let mut len2 = [0; 2];
        match self.input.read_exact(&mut len2) {
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
            r => r.context("reading corpus")?,
        }
        let mut key = vec![0; u16::from_le_bytes(len2) as usize];
        self.input
            .read_exact(&mut key)
            .context("corpus truncated in a key")?;
        let mut len4 = [0; 4];
        self.input
            .read_exact(&mut len4)
            .context("corpus truncated")?;
        let mut value = vec![0; u32::from_le_bytes(len4) as usize];
        self.input
            .read_exact(&mut value)
            .context("corpus truncated in a value")?;
        Ok(Some((key, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back() {
        let path = std::env::temp_dir().join(format!("corpus-test-{}", std::process::id()));
        let mut w = CorpusWriter::create(&path, 99).unwrap();
        w.write(b"k1", b"value one").unwrap();
        w.write(b"", &[0xC3, 0x01, 9]).unwrap();
        w.finish().unwrap();
        let mut r = CorpusReader::open(&path).unwrap();
        assert_eq!(r.seed, 99);
        assert_eq!(
            r.next_record().unwrap(),
            Some((b"k1".to_vec(), b"value one".to_vec()))
        );
        assert_eq!(
            r.next_record().unwrap(),
            Some((vec![], vec![0xC3, 0x01, 9]))
        );
        assert_eq!(r.next_record().unwrap(), None);
        std::fs::write(&path, b"nope").unwrap();
        assert!(CorpusReader::open(&path).is_err());
        std::fs::remove_file(path).unwrap();
    }
}
