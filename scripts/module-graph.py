#!/usr/bin/env python3
"""The top-level module import graph of src/ (crate:: paths outside comments and tests) and its cycles.

Usage: python3 scripts/module-graph.py [src] [-v]"""
import os, re, sys, collections
root = next((a for a in sys.argv[1:] if not a.startswith('-')), 'src')
def top(path):
    rel = os.path.relpath(path, root)
    parts = rel.split(os.sep)
    name = parts[0]
    if name.endswith('.rs'): name = name[:-3]
    return name
edges = collections.defaultdict(set)
for dp, _, fs in os.walk(root):
    if '/bin' in dp or dp.endswith('bin'): continue
    for f in fs:
        if not f.endswith('.rs') or f in ('tests.rs', 'conformance.rs'): continue
        p = os.path.join(dp, f); m = top(p)
        if m in ('lib', 'main'): continue
        text = open(p).read()
        # drop tests modules roughly: cut at '#[cfg(test)]\nmod tests'
        m_t = re.search(r'#\[cfg\((?:test|all\(test[^)]*\))\)\]\s*(?:#\[[^\]]*\]\s*)*mod tests', text)
        if m_t: text = text[:m_t.start()]
        for line in text.splitlines():
            s = line.strip()
            if s.startswith('//'): continue
            for t in re.findall(r'crate::([a-z_]+)', s):
                if t != m: edges[m].add(t)
            # use crate::{a, b::c}
        for blk in re.findall(r'use crate::\{([^;]*)\};', text, re.S):
            depth=0; cur=''; items=[]
            for ch in blk:
                if ch=='{': depth+=1
                elif ch=='}': depth-=1
                if ch==',' and depth==0: items.append(cur); cur=''
                else: cur+=ch
            items.append(cur)
            for it in items:
                it=it.strip()
                if not it: continue
                t=re.match(r'([a-z_]+)', it)
                if t and t.group(1)!=m and t.group(1)!='self': edges[m].add(t.group(1))
mods = sorted(set(edges) | {t for v in edges.values() for t in v})
# Tarjan SCC
idx={}; low={}; st=[]; on=set(); sccs=[]; c=[0]
def sc(v):
    idx[v]=low[v]=c[0]; c[0]+=1; st.append(v); on.add(v)
    for w in edges.get(v,()):
        if w not in idx: sc(w); low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        comp=[]
        while True:
            w=st.pop(); on.discard(w); comp.append(w)
            if w==v: break
        sccs.append(comp)
sys.setrecursionlimit(10000)
for v in mods:
    if v not in idx: sc(v)
cyc=[s for s in sccs if len(s)>1]
if '-v' in sys.argv:
    for m in sorted(edges): print(f"{m}: {' '.join(sorted(edges[m]))}")
print('cycles:', cyc if cyc else 'none')
