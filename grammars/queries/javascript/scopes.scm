(function_declaration body: (_) @scope.body) @scope
(generator_function_declaration body: (_) @scope.body) @scope
(function_expression body: (_) @scope.body) @scope
(arrow_function body: (statement_block) @scope.body) @scope
(method_definition body: (_) @scope.body) @scope
(class_declaration body: (_) @scope.body) @scope
(class body: (_) @scope.body) @scope
