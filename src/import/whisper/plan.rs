//! The mapping from CTranslate2 variable names to whisper.cpp tensor names,
//! in the order whisper.cpp's converters write them.

use super::ct2::Ct2Model;
use super::ggml::Hparams;
use super::{ImportError, Planned, TensorType};

struct Planner<'a> {
    model: &'a Ct2Model,
    out: Vec<Planned>,
    f16: bool,
}

impl Planner<'_> {
    fn push(
        &mut self,
        name: String,
        source: String,
        range: Option<std::ops::Range<usize>>,
        shape: Vec<u64>,
        f32: bool,
    ) {
        let ty = if shape.len() < 2 || f32 || !self.f16 { TensorType::F32 } else { TensorType::F16 };
        let dims = shape.into_iter().rev().collect();
        self.out.push(Planned { name, source, range, dims, ty });
    }

    /// A whole variable; `f32` forces f32 storage.
    fn whole(&mut self, name: &str, source: &str, f32: bool) -> Result<(), ImportError> {
        let shape = self.model.shape(source)?;
        self.push(name.into(), source.into(), None, shape, f32);
        Ok(())
    }

    /// A 1-D bias stored as an `n × 1` f32 column, as whisper.cpp reads conv biases.
    fn column(&mut self, name: &str, source: &str) -> Result<(), ImportError> {
        let shape = self.model.shape(source)?;
        if shape.len() != 1 {
            return Err(ImportError::Tensor {
                name: source.into(),
                reason: format!("has shape {shape:?}, expected 1-D"),
            });
        }
        self.push(name.into(), source.into(), None, vec![shape[0], 1], true);
        Ok(())
    }

    /// Rows `part * d .. (part + 1) * d` of a variable made of `parts` stacked blocks.
    fn rows(
        &mut self,
        name: String,
        source: String,
        d: u64,
        part: u64,
        parts: u64,
    ) -> Result<(), ImportError> {
        let shape = self.model.shape(&source)?;
        if shape.first() != Some(&(parts * d)) {
            let reason = format!("has shape {shape:?}, expected {parts} blocks of {d} rows");
            return Err(ImportError::Tensor { name: source, reason });
        }
        let inner: u64 = shape[1..].iter().product();
        let range = (part * d * inner) as usize..((part + 1) * d * inner) as usize;
        let mut out_shape = shape;
        out_shape[0] = d;
        self.push(name, source, Some(range), out_shape, false);
        Ok(())
    }

    fn lin(&mut self, dst: &str, src: &str) -> Result<(), ImportError> {
        self.whole(&format!("{dst}.weight"), &format!("{src}/weight"), false)?;
        self.whole(&format!("{dst}.bias"), &format!("{src}/bias"), false)
    }

    fn ln(&mut self, dst: &str, src: &str) -> Result<(), ImportError> {
        self.whole(&format!("{dst}.weight"), &format!("{src}/gamma"), false)?;
        self.whole(&format!("{dst}.bias"), &format!("{src}/beta"), false)
    }

    /// Fused query/key/value: Whisper's key projection has no bias.
    fn qkv(&mut self, dst: &str, src: &str, d: u64) -> Result<(), ImportError> {
        let (w, b) = (format!("{src}/weight"), format!("{src}/bias"));
        self.rows(format!("{dst}.query.weight"), w.clone(), d, 0, 3)?;
        self.rows(format!("{dst}.query.bias"), b.clone(), d, 0, 3)?;
        self.rows(format!("{dst}.key.weight"), w.clone(), d, 1, 3)?;
        self.rows(format!("{dst}.value.weight"), w, d, 2, 3)?;
        self.rows(format!("{dst}.value.bias"), b, d, 2, 3)
    }

    /// Fused key/value of the cross attention.
    fn kv(&mut self, dst: &str, src: &str, d: u64) -> Result<(), ImportError> {
        let (w, b) = (format!("{src}/weight"), format!("{src}/bias"));
        self.rows(format!("{dst}.key.weight"), w.clone(), d, 0, 2)?;
        self.rows(format!("{dst}.value.weight"), w, d, 1, 2)?;
        self.rows(format!("{dst}.value.bias"), b, d, 1, 2)
    }
}

/// Every output tensor, in file order.
pub(crate) fn plan(model: &Ct2Model, hp: &Hparams) -> Result<Vec<Planned>, ImportError> {
    let mut p = Planner { model, out: Vec::new(), f16: hp.ftype == 1 };
    p.whole("encoder.positional_embedding", "encoder/position_encodings/encodings", true)?;
    p.whole("encoder.conv1.weight", "encoder/conv1/weight", false)?;
    p.column("encoder.conv1.bias", "encoder/conv1/bias")?;
    p.whole("encoder.conv2.weight", "encoder/conv2/weight", false)?;
    p.column("encoder.conv2.bias", "encoder/conv2/bias")?;
    let d = hp.n_audio_state as u64;
    for i in 0..hp.n_audio_layer {
        let (o, s) = (format!("encoder.blocks.{i}"), format!("encoder/layer_{i}"));
        p.qkv(&format!("{o}.attn"), &format!("{s}/self_attention/linear_0"), d)?;
        p.lin(&format!("{o}.attn.out"), &format!("{s}/self_attention/linear_1"))?;
        p.ln(&format!("{o}.attn_ln"), &format!("{s}/self_attention/layer_norm"))?;
        p.lin(&format!("{o}.mlp.0"), &format!("{s}/ffn/linear_0"))?;
        p.lin(&format!("{o}.mlp.2"), &format!("{s}/ffn/linear_1"))?;
        p.ln(&format!("{o}.mlp_ln"), &format!("{s}/ffn/layer_norm"))?;
    }
    p.ln("encoder.ln_post", "encoder/layer_norm")?;

    p.whole("decoder.positional_embedding", "decoder/position_encodings/encodings", true)?;
    p.whole("decoder.token_embedding.weight", "decoder/embeddings/weight", false)?;
    let d = hp.n_text_state as u64;
    for i in 0..hp.n_text_layer {
        let (o, s) = (format!("decoder.blocks.{i}"), format!("decoder/layer_{i}"));
        p.qkv(&format!("{o}.attn"), &format!("{s}/self_attention/linear_0"), d)?;
        p.lin(&format!("{o}.attn.out"), &format!("{s}/self_attention/linear_1"))?;
        p.ln(&format!("{o}.attn_ln"), &format!("{s}/self_attention/layer_norm"))?;
        p.lin(&format!("{o}.cross_attn.query"), &format!("{s}/attention/linear_0"))?;
        p.kv(&format!("{o}.cross_attn"), &format!("{s}/attention/linear_1"), d)?;
        p.lin(&format!("{o}.cross_attn.out"), &format!("{s}/attention/linear_2"))?;
        p.ln(&format!("{o}.cross_attn_ln"), &format!("{s}/attention/layer_norm"))?;
        p.lin(&format!("{o}.mlp.0"), &format!("{s}/ffn/linear_0"))?;
        p.lin(&format!("{o}.mlp.2"), &format!("{s}/ffn/linear_1"))?;
        p.ln(&format!("{o}.mlp_ln"), &format!("{s}/ffn/layer_norm"))?;
    }
    p.ln("decoder.ln", "decoder/layer_norm")?;
    Ok(p.out)
}
