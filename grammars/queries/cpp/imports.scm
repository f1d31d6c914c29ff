(preproc_include) @import
(using_declaration) @import
(alias_declaration) @import
(namespace_alias_definition) @import
