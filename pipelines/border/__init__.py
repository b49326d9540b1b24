"""The border: where personnummer are validated and turned into keyed pseudonyms."""
