; Constructs whose header (the text before @scope.body) the context providers may show.
(function_definition body: (_) @scope.body) @scope
(struct_specifier body: (_) @scope.body) @scope
(union_specifier body: (_) @scope.body) @scope
(enum_specifier body: (_) @scope.body) @scope
