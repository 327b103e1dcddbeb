"""vidgen: video-diffusion research monorepo."""
