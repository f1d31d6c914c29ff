(function_item body: (block) @scope.body) @scope
(impl_item body: (declaration_list) @scope.body) @scope
(trait_item body: (declaration_list) @scope.body) @scope
(struct_item body: (_) @scope.body) @scope
(enum_item body: (enum_variant_list) @scope.body) @scope
(union_item body: (field_declaration_list) @scope.body) @scope
(mod_item body: (declaration_list) @scope.body) @scope
(closure_expression body: (block) @scope.body) @scope
