(function_declaration body: (block) @scope.body) @scope
(function_definition body: (block) @scope.body) @scope
