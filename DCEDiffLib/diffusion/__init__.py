"""The DCE-diff model: Palette's guided-diffusion U-Net conditioned on the noise level γ, its schedules,
training objectives, samplers (the paper's 1000-step ancestral sampler and fast solvers), safe model files and
whole-volume synthesis. Plain torch; no diffusion library at run time."""
