namespace OllamaContinuity.Hardening;

/// <summary>
/// Keeps -Root work inside the root: every component of a path is resolved (each symbolic link followed, absolute
/// links from the real root "/", as the kernel does for this process) and a path whose real location leaves the
/// real root is refused. Without it, <c>ROOT/etc/systemd/system</c> linked to the host's <c>/etc/systemd/system</c>
/// makes a write meant for a mounted image land on the running machine.
/// </summary>
public static class RootedPath
{
    private const int MaxLinks = 40; // Linux's own limit (ELOOP)

    /// <summary>The path with every symbolic link resolved; components that do not exist yet are kept as written.</summary>
    public static string RealPath(string path)
    {
        // Not Path.GetFullPath: it removes "a/.." by text, before "a" is known to be a link (the kernel follows it first).
        var absolute = Path.IsPathRooted(path) ? path : Path.Combine(Directory.GetCurrentDirectory(), path);
        var pending = new LinkedList<string>(absolute.Split('/', StringSplitOptions.RemoveEmptyEntries));
        var resolved = "/";
        var links = 0;
        while (pending.First is { } node)
        {
            var part = node.Value;
            pending.RemoveFirst();
            if (part == ".")
            {
                continue;
            }

            if (part == "..")
            {
                resolved = Path.GetDirectoryName(resolved) ?? "/";
                continue;
            }

            var next = Path.Join(resolved, part);
            if (new FileInfo(next).LinkTarget is { } target)
            {
                if (++links > MaxLinks)
                {
                    throw new IOException($"Too many levels of symbolic links at {next}.");
                }

                if (target.StartsWith('/'))
                {
                    resolved = "/";
                }

                foreach (var t in Enumerable.Reverse(target.Split('/', StringSplitOptions.RemoveEmptyEntries)))
                {
                    pending.AddFirst(t);
                }

                continue;
            }

            resolved = next;
        }

        return resolved;
    }

    /// <summary>True when <paramref name="path"/>, resolved, is <paramref name="root"/> (resolved) or inside it.</summary>
    public static bool IsInside(string root, string path)
    {
        var realRoot = RealPath(root).TrimEnd('/');
        var real = RealPath(path);
        return realRoot.Length == 0 || real == realRoot || real.StartsWith(realRoot + "/", StringComparison.Ordinal);
    }

    /// <summary>Throws <see cref="HardeningValidationException"/> (PathOutsideRoot) when <paramref name="path"/> leaves <paramref name="root"/>.</summary>
    public static void Require(string root, string path)
    {
        if (!IsInside(root, path))
        {
            throw new HardeningValidationException("PathOutsideRoot", "Root",
                $"'{path}' leads outside the root '{root}' (it resolves to '{RealPath(path)}' through a symbolic link): refused, so nothing is written outside the root.",
                "Check the links under the root (an absolute link in an image points into the running system); replace them, or mount the image so its links stay inside it.");
        }
    }
}
