// The agent's cache on the target (issue 12): the agent's text, the compiled core and its compiled
// modules, each named by its sha256, in a folder whose ACL grants only SYSTEM and Administrators
// (by SID).
using System;
using System.Collections.Generic;
using System.IO;
using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Pushinstall.Agent
{
    /// <summary>Writes cache entries; the bootstrap and the shim read them, checking the hash
    /// in the name against the bytes before they use them (docs/ops.md "Defining the agent").</summary>
    public static class Cache
    {
        /// <summary>Entries of one kind (.ps1, .dll) kept besides the one just stored.</summary>
        public const int Keep = 3;

        /// <summary>%ProgramFiles%\pushinstall\cache, as the bootstrap and the shim name it
        /// ($env:ProgramFiles: the same folder in the same process); tests point it elsewhere.</summary>
        public static string Folder = Path.Combine(
            Environment.GetFolderPath(Environment.SpecialFolder.ProgramFiles), "pushinstall\\cache");

        // <sha256>.ps1 (the agent's text) or <sha256 of the source>-<sha256 of the DLL>.dll
        private static readonly Regex Name = new Regex("^(?:[0-9a-f]{64}-)?([0-9a-f]{64})\\.(ps1|dll)$");

        /// <summary>Store `bytes` as `folder\name` when the name's last hash is theirs; the
        /// folder is made, or its ACL put back, first. False (never an exception) when it
        /// cannot be stored: a session that cannot write the cache still runs.</summary>
        public static bool Store(string folder, string name, byte[] bytes)
        {
            Match match = Name.Match(name ?? "");
            if (!match.Success || bytes == null || Hash(bytes) != match.Groups[1].Value)
            {
                return false;
            }
            string temp = null;
            try
            {
                Directory.CreateDirectory(folder);
                Core.Windows.ProtectDirectory(folder);
                string path = Path.Combine(folder, name);
                temp = path + "." + Guid.NewGuid().ToString("N").Substring(0, 12) + ".tmp";
                File.WriteAllBytes(temp, bytes);
                Files.MoveIntoPlace(temp, path);
                Prune(folder, name, "*." + match.Groups[2].Value);
                return true;
            }
            catch (Exception)
            {
                try
                {
                    Files.RemoveTemp(temp);
                }
                catch (Exception)
                {
                }
                return false;
            }
        }

        /// <summary>Store the agent's text as `<its sha256>.ps1` in `Folder`.</summary>
        public static bool StoreAgent(byte[] text)
        {
            return text != null && Store(Folder, Hash(text) + ".ps1", text);
        }

        /// <summary>Store a compiled core or module as `<source>-<its sha256>.dll` in `Folder`,
        /// removing the other DLLs of that source; the name, or null.</summary>
        public static string StoreAssembly(string source, byte[] assembly)
        {
            string folder = Folder;
            if (assembly == null)
            {
                return null;
            }
            string name = source + "-" + Hash(assembly) + ".dll";
            if (!Store(folder, name, assembly))
            {
                return null;
            }
            try
            {
                // one DLL per source: an earlier compile (or a changed file) is replaced
                foreach (string path in Directory.GetFiles(folder, source + "-*.dll"))
                {
                    if (Path.GetFileName(path) != name)
                    {
                        File.Delete(path);
                    }
                }
            }
            catch (Exception)
            {
            }
            return name;
        }

        /// <summary>The path of `source`'s cached DLL (`<source>-<sha256>.dll`) whose bytes hash
        /// to its name, and those bytes; null when there is none.</summary>
        public static string Find(string source, out byte[] bytes)
        {
            bytes = null;
            try
            {
                foreach (string path in Directory.GetFiles(Folder, source + "-*.dll"))
                {
                    byte[] read = File.ReadAllBytes(path);
                    if (Path.GetFileName(path) == source + "-" + Hash(read) + ".dll")
                    {
                        bytes = read;
                        return path;
                    }
                }
            }
            catch (Exception)
            {
                // no folder, or not readable: nothing cached
            }
            return null;
        }

        /// <summary>Lowercase hex sha256 of `bytes`.</summary>
        public static string Hash(byte[] bytes)
        {
            using (SHA256CryptoServiceProvider algorithm = new SHA256CryptoServiceProvider())
            {
                return Files.Hex(algorithm.ComputeHash(bytes));
            }
        }

        // the newest entries of a kind stay (another controller may use an older agent)
        private static void Prune(string folder, string stored, string pattern)
        {
            List<FileInfo> entries = new List<FileInfo>();
            foreach (string path in Directory.GetFiles(folder, pattern))
            {
                string file = Path.GetFileName(path);
                if (file != stored && Name.IsMatch(file))
                {
                    entries.Add(new FileInfo(path));
                }
            }
            entries.Sort(delegate(FileInfo a, FileInfo b) { return b.LastWriteTimeUtc.CompareTo(a.LastWriteTimeUtc); });
            for (int i = Keep; i < entries.Count; i++)
            {
                entries[i].Delete();
            }
        }
    }
}
