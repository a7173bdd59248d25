/**
 * Finds the package's types that a user receives but cannot name: a type declared in the package,
 * returned by an exported function or by a method of an exported class or interface (followed
 * through Promise, arrays, unions and object literals, and on through the members of every type
 * found), that neither that entry point nor the package root exports. Run over src/ (the checkout)
 * and over an installed package's .d.ts files (test/package/install.test.ts).
 */
import { resolve, sep } from "node:path";
import ts from "typescript";

/** One entry point: its subpath (".", "./api", ...) and the file that declares it. */
export interface EntryPoint {
  readonly subpath: string;
  readonly file: string;
}

/** The entry points of package.json's `exports`, as source files (src) or declarations (dist). */
export function entryPointsOf(
  root: string,
  exports: Readonly<Record<string, unknown>>,
  from: "src" | "dist",
): EntryPoint[] {
  const out: EntryPoint[] = [];
  for (const [subpath, target] of Object.entries(exports)) {
    if (typeof target !== "object" || target === null) continue; // ./package.json
    const types = (target as { types?: unknown }).types;
    if (typeof types !== "string") throw new Error(`exports["${subpath}"] has no "types"`);
    const file =
      from === "dist"
        ? types
        : types.replace(/^\.\/dist\/src\//, "./src/").replace(/\.d\.ts$/, ".ts");
    out.push({ subpath, file: resolve(root, file) });
  }
  return out;
}

/**
 * Each problem as `<subpath>: <where> returns <Type>, which is not exported` (empty when none).
 * `packageRoot` tells the package's own declarations from its dependencies' and TypeScript's.
 */
export function unexportedReturnTypes(
  entries: readonly EntryPoint[],
  packageRoot: string,
): string[] {
  const program = ts.createProgram(
    entries.map((e) => e.file),
    {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      skipLibCheck: true,
      noEmit: true,
      types: ["node"],
    },
  );
  const checker = program.getTypeChecker();
  const own = resolve(packageRoot) + sep;
  // The package's own files: under its root, and not in a node_modules below it (the root itself
  // may be in a consumer's node_modules).
  const isOwn = (sym: ts.Symbol | undefined): boolean =>
    sym?.declarations?.some((d) => {
      const f = resolve(d.getSourceFile().fileName);
      return f.startsWith(own) && !f.slice(own.length).split(sep).includes("node_modules");
    }) === true;
  const resolveAlias = (s: ts.Symbol): ts.Symbol =>
    s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;

  const exportedBy = new Map<string, Set<ts.Symbol>>();
  for (const e of entries) {
    const sf = program.getSourceFile(e.file);
    if (sf === undefined) throw new Error(`cannot read ${e.file}`);
    const mod = checker.getSymbolAtLocation(sf);
    if (mod === undefined) throw new Error(`${e.file} is not a module`);
    exportedBy.set(e.subpath, new Set(checker.getExportsOfModule(mod).map(resolveAlias)));
  }
  const rootExports = exportedBy.get(".") ?? new Set<ts.Symbol>();

  const problems: string[] = [];
  for (const e of entries) {
    const exported = exportedBy.get(e.subpath)!;
    const seenTypes = new Set<ts.Type>();
    const seenSymbols = new Set<ts.Symbol>();
    const work: { sym: ts.Symbol; where: string }[] = [];

    /** A named type of the package reached from `where`: it must be exported, and is explored. */
    const named = (sym: ts.Symbol, where: string): void => {
      const s = resolveAlias(sym);
      if (!isOwn(s)) return;
      if (!exported.has(s) && !rootExports.has(s)) {
        problems.push(`${e.subpath}: ${where} gives ${s.getName()}, which is not exported`);
      }
      if (!seenSymbols.has(s)) {
        seenSymbols.add(s);
        work.push({ sym: s, where: s.getName() });
      }
    };

    const visit = (t: ts.Type, where: string): void => {
      if (seenTypes.has(t)) return;
      seenTypes.add(t);
      if (t.aliasSymbol !== undefined && isOwn(t.aliasSymbol)) {
        named(t.aliasSymbol, where);
        for (const a of t.aliasTypeArguments ?? []) visit(a, where);
        return;
      }
      if (t.isUnionOrIntersection()) {
        for (const c of t.types) visit(c, where);
        return;
      }
      const sym = t.getSymbol();
      if (
        sym !== undefined &&
        isOwn(sym) &&
        sym.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.Class | ts.SymbolFlags.Enum)
      ) {
        named(sym, where);
      }
      if (t.flags & ts.TypeFlags.Object) {
        const obj = t as ts.ObjectType;
        if (obj.objectFlags & ts.ObjectFlags.Reference) {
          for (const a of checker.getTypeArguments(t as ts.TypeReference)) visit(a, where);
        }
        if (obj.objectFlags & ts.ObjectFlags.Anonymous) {
          // An object literal type or a function type: what it holds or returns.
          for (const sig of t.getCallSignatures()) visit(sig.getReturnType(), where);
          for (const p of t.getProperties()) {
            const d = p.valueDeclaration ?? p.declarations?.[0];
            if (d !== undefined) visit(checker.getTypeOfSymbolAtLocation(p, d), where);
          }
        }
      }
    };

    /** The return types of a function, or of the public methods of a class or interface. */
    const explore = (sym: ts.Symbol, where: string): void => {
      const d = sym.valueDeclaration ?? sym.declarations?.[0];
      if (d === undefined) return;
      if (sym.flags & ts.SymbolFlags.Function) {
        for (const sig of checker.getTypeOfSymbolAtLocation(sym, d).getCallSignatures()) {
          visit(sig.getReturnType(), `${where}()`);
        }
      }
      const types: ts.Type[] = [];
      if (sym.flags & (ts.SymbolFlags.Class | ts.SymbolFlags.Interface)) {
        types.push(checker.getDeclaredTypeOfSymbol(sym));
      }
      if (sym.flags & ts.SymbolFlags.Class) types.push(checker.getTypeOfSymbolAtLocation(sym, d));
      for (const type of types) {
        for (const p of checker.getPropertiesOfType(type)) {
          const pd = p.valueDeclaration ?? p.declarations?.[0];
          if (pd === undefined || p.getName().startsWith("#") || p.getName() === "prototype")
            continue;
          const flags = ts.getCombinedModifierFlags(pd);
          if (flags & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) continue;
          const pt = checker.getTypeOfSymbolAtLocation(p, pd);
          const sigs = pt.getCallSignatures();
          for (const sig of sigs) visit(sig.getReturnType(), `${where}.${p.getName()}()`);
          // A field of an interface the user receives is received too (a class's fields are its
          // own state: only its methods count).
          if (sigs.length === 0 && sym.flags & ts.SymbolFlags.Interface) {
            visit(pt, `${where}.${p.getName()}`);
          }
        }
      }
    };

    for (const s of exported) {
      if (isOwn(s)) work.push({ sym: s, where: s.getName() });
      seenSymbols.add(s);
    }
    while (work.length > 0) {
      const { sym, where } = work.pop()!;
      explore(sym, where);
    }
  }
  return [...new Set(problems)].sort();
}
