(function_definition body: (block) @scope.body) @scope
(class_definition body: (block) @scope.body) @scope
