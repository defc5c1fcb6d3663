//! Temporary stand-in for the mapping engine (replaced by the engine's branch).

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Cef,
}

#[derive(Debug)]
pub struct Mapping {
    product: String,
}

#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
#[error("mapping errors")]
pub struct MappingErrors {
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Debug, thiserror::Error)]
#[error("render error")]
pub struct RenderError;

impl Mapping {
    pub fn load(path: &Path) -> Result<Mapping, MappingErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| MappingErrors {
            diagnostics: vec![Diagnostic {
                file: path.into(),
                line: 1,
                column: 1,
                message: e.to_string(),
            }],
        })?;
        Self::compile(path, &text)
    }
    pub fn compile(_origin: &Path, text: &str) -> Result<Mapping, MappingErrors> {
        Ok(Mapping {
            product: text.lines().next().unwrap_or("").to_owned(),
        })
    }
    pub fn format(&self) -> Format {
        Format::Cef
    }
    pub fn render(&self, event: &serde_json::Value, out: &mut Vec<u8>) -> Result<(), RenderError> {
        let id = event
            .get("eventDataId")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        out.extend_from_slice(
            format!(
                "CEF:0|Microsoft|{}|1|x|y|3|externalId={}",
                self.product.len(),
                id
            )
            .as_bytes(),
        );
        Ok(())
    }
}

#[derive(Debug)]
pub struct MappingSet {
    maps: Vec<(String, Mapping)>,
}

impl MappingSet {
    pub fn load(dir: &Path, kinds: &[&str]) -> Result<MappingSet, MappingErrors> {
        let mut maps = Vec::new();
        for k in kinds {
            maps.push((
                k.to_string(),
                Mapping::load(&dir.join(format!("{k}.toml")))?,
            ));
        }
        Ok(MappingSet { maps })
    }
    pub fn get(&self, kind: &str) -> Option<&Mapping> {
        self.maps.iter().find(|(k, _)| k == kind).map(|(_, m)| m)
    }
}
