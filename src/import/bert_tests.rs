use super::*;
use serde_json::json;

fn minilm_config() -> Json {
    json!({
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": 384,
        "intermediate_size": 1536, "num_hidden_layers": 6, "num_attention_heads": 12,
        "max_position_embeddings": 512, "vocab_size": 30522, "type_vocab_size": 2,
        "layer_norm_eps": 1e-12, "hidden_act": "gelu", "position_embedding_type": "absolute"
    })
}

#[test]
fn config_of_minilm() {
    let c = parse_config(&minilm_config(), Path::new("config.json")).unwrap();
    let expected = BertConfig {
        hidden: 384,
        ff: 1536,
        layers: 6,
        heads: 12,
        context: 512,
        eps: 1e-12,
        vocab_size: 30522,
        type_vocab: 2,
    };
    assert_eq!(c, expected);
    assert!(is_bert(&minilm_config()));
    let mut no_archs = minilm_config();
    no_archs.as_object_mut().unwrap().remove("architectures");
    assert!(is_bert(&no_archs));
    assert!(!is_bert(&json!({"model_type": "roberta", "architectures": ["RobertaModel"]})));
    assert!(!is_bert(&json!({"model_type": "bert", "architectures": ["BertForSequenceClassification"]})));
    assert!(!is_bert(&json!({"architectures": ["BertModel"]})));
}

#[test]
fn bad_configs_are_refused() {
    let err = |key: &str, value: Json| {
        let mut c = minilm_config();
        c[key] = value;
        parse_config(&c, Path::new("config.json")).unwrap_err().to_string()
    };
    assert!(err("num_attention_heads", json!(7)).contains("not divisible"));
    assert!(err("num_hidden_layers", json!(1000)).contains("from 1 to 512"));
    assert!(err("hidden_size", json!(-1)).contains("hidden_size = -1"));
    assert!(err("vocab_size", json!("many")).contains("vocab_size"));
    assert!(err("layer_norm_eps", json!(0)).contains("layer_norm_eps"));
    assert!(err("hidden_act", json!("relu")).contains("GELU"));
    assert!(err("position_embedding_type", json!("relative_key")).contains("absolute"));
    let mut c = minilm_config();
    c.as_object_mut().unwrap().remove("hidden_size");
    assert!(parse_config(&c, Path::new("config.json"))
        .unwrap_err()
        .to_string()
        .contains("has no hidden_size"));
}

#[test]
fn hugging_face_names_map_to_llama_cpp_names() {
    let to = |hf: &str| map_name(hf).map(|m| m.unwrap_or_else(|| "(skipped)".into()));
    assert_eq!(to("embeddings.word_embeddings.weight").unwrap(), "token_embd.weight");
    assert_eq!(to("bert.embeddings.token_type_embeddings.weight").unwrap(), "token_types.weight");
    assert_eq!(to("embeddings.position_embeddings.weight").unwrap(), "position_embd.weight");
    assert_eq!(to("embeddings.LayerNorm.gamma").unwrap(), "token_embd_norm.weight");
    assert_eq!(to("encoder.layer.0.attention.self.query.bias").unwrap(), "blk.0.attn_q.bias");
    assert_eq!(to("encoder.layer.11.attention.self.key.weight").unwrap(), "blk.11.attn_k.weight");
    assert_eq!(to("encoder.layer.2.attention.self.value.weight").unwrap(), "blk.2.attn_v.weight");
    assert_eq!(to("encoder.layer.2.attention.output.dense.weight").unwrap(), "blk.2.attn_output.weight");
    assert_eq!(to("encoder.layer.2.attention.output.LayerNorm.beta").unwrap(), "blk.2.attn_output_norm.bias");
    assert_eq!(to("encoder.layer.3.intermediate.dense.weight").unwrap(), "blk.3.ffn_up.weight");
    assert_eq!(to("encoder.layer.3.output.dense.bias").unwrap(), "blk.3.ffn_down.bias");
    assert_eq!(to("encoder.layer.3.output.LayerNorm.weight").unwrap(), "blk.3.layer_output_norm.weight");
    for skipped in ["embeddings.position_ids", "pooler.dense.weight", "cls.predictions.bias"] {
        assert_eq!(to(skipped).unwrap(), "(skipped)");
    }
    for unknown in [
        "encoder.layer.x.output.dense.weight",
        "encoder.layer.0.crossattention.weight",
        "lm_head.weight",
        "x",
    ] {
        assert_eq!(to(unknown), None, "{unknown}");
    }
}

#[test]
fn pooling_follows_the_sentence_transformers_module() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(pooling(dir.path()).unwrap(), 1, "mean without a Pooling module");
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("1_Pooling/config.json", r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#);
    assert_eq!(pooling(dir.path()).unwrap(), 2);
    write(
        "modules.json",
        r#"[{"path": "", "type": "x.Transformer"}, {"path": "pool", "type": "sentence_transformers.models.Pooling"}]"#,
    );
    write("pool/config.json", r#"{"pooling_mode_lasttoken": true}"#);
    assert_eq!(pooling(dir.path()).unwrap(), 3);
    write("pool/config.json", r#"{"pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": true}"#);
    let err = pooling(dir.path()).unwrap_err().to_string();
    assert!(err.contains("max_tokens") && err.contains("pool/config.json"), "{err}");
    write("pool/config.json", "{}");
    assert!(pooling(dir.path()).is_err());
    write("pool/config.json", "[");
    assert!(pooling(dir.path()).unwrap_err().to_string().contains("not valid JSON"));
}
