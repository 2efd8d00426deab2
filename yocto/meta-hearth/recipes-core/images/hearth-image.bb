SUMMARY = "Hearth appliance image: the hearth service on a small systemd system"
DESCRIPTION = "Boots straight into the hearth service (HTTPS on 8443, 8080 redirects) with SSH for \
administration. The distro must use systemd (see yocto/README.md)."
LICENSE = "MIT"

inherit core-image

# SSH for first-time setup (creating the first user and token). For a smaller image use
# ssh-server-dropbear instead; the two cannot be combined.
IMAGE_FEATURES += "ssh-server-openssh"

# hearth-fetch lets hearth download the default model itself once the box has network (at
# first start, then `hearth models pull`). For an image that carries its model, build it
# with HEARTH_IMAGE_MODEL = "hearth-model" (see recipes-hearth/hearth-model) and
# HEARTH_IMAGE_FETCH = "".
HEARTH_IMAGE_FETCH ??= "hearth-fetch"
HEARTH_IMAGE_MODEL ??= ""
IMAGE_INSTALL:append = " hearth ${HEARTH_IMAGE_FETCH} ${HEARTH_IMAGE_MODEL}"

# Room for a model (~0.5 GB for the default one) and the chat database. In KiB.
IMAGE_ROOTFS_EXTRA_SPACE = "1572864"
