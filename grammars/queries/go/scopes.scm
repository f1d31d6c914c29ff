(function_declaration body: (block) @scope.body) @scope
(method_declaration body: (block) @scope.body) @scope
(func_literal body: (block) @scope.body) @scope
(type_spec type: (struct_type (field_declaration_list) @scope.body)) @scope
(type_spec type: (interface_type) @scope.body) @scope
