from cmcgns.config.loading import dump_config, load_config, save_resolved_config

__all__ = ["load_config", "dump_config", "save_resolved_config"]
