/**
 * Layering rules from shared/DESIGN.md: each layer may import only the layers above it in this list
 * (kernel, foundation, agents, coordination, economics, tune, perf, observe, cluster, cli), and no
 * module may take part in an import cycle.
 */
const LAYERS = ['kernel', 'foundation', 'agents', 'coordination', 'economics', 'tune', 'perf', 'observe', 'cluster', 'cli'];

const layerRules = LAYERS.map((layer, i) => {
  const higher = LAYERS.slice(i + 1);
  return higher.length === 0
    ? null
    : {
        name: `${layer}-imports-higher-layer`,
        comment: `src/${layer}/ may only import layers below it in DESIGN.md's table (${LAYERS.slice(0, i).join(', ') || 'nothing else in src'})`,
        severity: 'error',
        from: { path: `^src/${layer}/` },
        to: { path: `^src/(${higher.join('|')})/` },
      };
}).filter(Boolean);

module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      comment: 'Import cycles make layers meaningless and initialization order fragile.',
      severity: 'error',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'src-imports-tests-or-bench',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench|examples)/' },
    },
    ...layerRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
