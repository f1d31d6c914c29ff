(function_definition body: (_) @scope.body) @scope
(class_specifier body: (_) @scope.body) @scope
(struct_specifier body: (_) @scope.body) @scope
(union_specifier body: (_) @scope.body) @scope
(enum_specifier body: (_) @scope.body) @scope
(namespace_definition body: (_) @scope.body) @scope
(lambda_expression body: (_) @scope.body) @scope
