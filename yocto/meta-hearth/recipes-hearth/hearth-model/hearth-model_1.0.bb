SUMMARY = "A GGUF model for Hearth, baked into the image"
DESCRIPTION = "Copies a model file from the build host into the image and points the \
hearth service at it, so the device needs no network to get a model. Weights are never \
in git: fetch them first (python3 models/fetch.py default) and set HEARTH_MODEL_DIR."
# The license of the weights. The default model (Qwen2.5-Coder-0.5B-Instruct) is
# Apache-2.0; change both lines for another model (licenses: models/manifest.toml).
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

inherit allarch

# In local.conf: the directory on the build host that holds the file (fetch.py's --dest,
# by default ~/.cache/hearth/models, written out in full), the file name, and its sha256
# (from models/manifest.toml; empty skips the check).
HEARTH_MODEL_DIR ??= ""
HEARTH_MODEL_FILE ??= "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
HEARTH_MODEL_SHA256 ??= "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"

FILESEXTRAPATHS:prepend := "${HEARTH_MODEL_DIR}:"
SRC_URI = "file://${HEARTH_MODEL_FILE}"

python () {
    if not d.getVar('HEARTH_MODEL_DIR'):
        raise bb.parse.SkipRecipe("set HEARTH_MODEL_DIR to the folder holding %s" % d.getVar('HEARTH_MODEL_FILE'))
}

do_install() {
    if [ -n "${HEARTH_MODEL_SHA256}" ]; then
        echo "${HEARTH_MODEL_SHA256}  ${WORKDIR}/${HEARTH_MODEL_FILE}" | sha256sum -c - \
            || bbfatal "${HEARTH_MODEL_FILE} does not match HEARTH_MODEL_SHA256"
    fi
    # Under /usr (works with a read-only rootfs), world-readable so the hearth user can
    # load it. The drop-in's HEARTH_MODEL overrides [model] path in hearth.toml (the
    # environment beats the config file): to run another model, leave this package out.
    install -D -m 0644 ${WORKDIR}/${HEARTH_MODEL_FILE} ${D}${datadir}/hearth/models/${HEARTH_MODEL_FILE}
    install -d ${D}${systemd_system_unitdir}/hearth.service.d
    printf '[Service]\nEnvironment=HEARTH_MODEL=%s\n' "${datadir}/hearth/models/${HEARTH_MODEL_FILE}" \
        > ${D}${systemd_system_unitdir}/hearth.service.d/50-model.conf
}

FILES:${PN} = "${datadir}/hearth/models/${HEARTH_MODEL_FILE} \
               ${systemd_system_unitdir}/hearth.service.d"
RDEPENDS:${PN} = "hearth"
